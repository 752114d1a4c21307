"""Messages and their events: acceptance in one transaction, lookups, operator actions.

A request's payload is stored once (``send_requests``, zlib-compressed JSON)
and shared by all its messages; a message row holds only what the queue,
searches and the timeline need.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.acceptance import AcceptancePlan, encode_event_data, recipient_domain
from appliance.domain.ids import new_id
from appliance.domain.message_status import (
    TERMINAL,
    MessageStatus,
    cancel_refusal,
    retry_refusal,
)
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.schema import events, messages, send_requests
from appliance.store.suppressions import send_lists_in


@dataclass(frozen=True, slots=True)
class AcceptWrite:
    """One accepted request as :meth:`Messages.accept_many` writes it."""

    tenant_id: str
    plan: AcceptancePlan
    payload: bytes  # the request's JSON text, stored compressed
    category: str | None
    batch_id: str | None
    now: float


@dataclass(frozen=True, slots=True)
class PlannedAccept:
    """An accepted request planned inside the write: ``plan`` gets the suppression lists
    of ``suppression_keys`` (``store.suppressions.send_lists_in``) and makes its plan."""

    tenant_id: str
    suppression_keys: frozenset[str]
    asm_group_id: int | None
    plan: Callable[[Mapping[str, frozenset[str]]], AcceptancePlan]
    payload: bytes
    category: str | None
    batch_id: str | None
    now: float


def _accept_rows(
    w: AcceptWrite,
    request_rows: list[dict[str, Any]],
    message_rows: list[dict[str, Any]],
    event_rows: list[dict[str, Any]],
) -> None:
    plan, tenant_id, now = w.plan, w.tenant_id, w.now
    request_rows.append(
        {
            "id": plan.request_id,
            "tenant_id": tenant_id,
            "payload": zlib.compress(w.payload, 6),
            "message_count": len(plan.messages),
            "created_at": now,
        }
    )
    message_rows.extend(
        {
            "id": m.id,
            "tenant_id": tenant_id,
            "request_id": plan.request_id,
            "personalization": m.personalization,
            "recipient": m.recipient,
            "recipient_domain": recipient_domain(m.recipient),
            "from_email": m.from_email,
            "subject": m.subject,
            "category": w.category,
            "batch_id": w.batch_id,
            "status": m.status.value,
            "due_at": m.due_at,
            "attempts": 0,
            "error_message": m.error_message,
            "sandbox": False,
            "created_at": now,
            "updated_at": now,
        }
        for m in plan.messages
    )
    event_rows.extend(
        event_row(tenant_id, e.message_id, e.event_type, e.recipient, e.data, now, e.id)
        for e in plan.events
    )


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    tenant_id: str
    request_id: str
    personalization: int
    recipient: str
    from_email: str
    subject: str | None
    category: str | None
    batch_id: str | None
    status: MessageStatus
    due_at: float
    attempts: int
    lease_owner: str | None
    lease_until: float | None
    last_reply: str | None
    error_message: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    tenant_id: str
    message_id: str | None
    event_type: str
    recipient: str | None
    created_at: float
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        """The event as webhooks and the API show it (SPEC "Events")."""
        return {
            "event_id": self.id,
            "event_type": self.event_type,
            "timestamp": int(self.created_at),
            "message_id": self.message_id,
            "recipient_email": self.recipient,
            "tenant_id": self.tenant_id,
            **self.data,
        }


@dataclass(frozen=True, slots=True)
class MessageFilter:
    status: MessageStatus | None = None
    recipient: str | None = None
    from_email: str | None = None
    category: str | None = None
    x_message_id: str | None = None
    created_after: float | None = None
    created_before: float | None = None


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """Result of retry/cancel: the message after the action, or why it was refused."""

    message: Message | None
    refusal: str | None = None


def message_from_row(row: Any) -> Message:
    return Message(
        row.id,
        row.tenant_id,
        row.request_id,
        row.personalization,
        row.recipient,
        row.from_email,
        row.subject,
        row.category,
        row.batch_id,
        MessageStatus(row.status),
        row.due_at,
        row.attempts,
        row.lease_owner,
        row.lease_until,
        row.last_reply,
        row.error_message,
        row.created_at,
        row.updated_at,
    )


def _event(row: Any) -> Event:
    return Event(
        row.seq,
        row.id,
        row.tenant_id,
        row.message_id,
        row.event_type,
        row.recipient,
        row.created_at,
        json.loads(row.data),
    )


def event_row(
    tenant_id: str,
    message_id: str | None,
    event_type: str,
    recipient: str | None,
    data: dict[str, Any],
    now: float,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or new_id("evt", now=now),
        "tenant_id": tenant_id,
        "message_id": message_id,
        "event_type": event_type,
        "recipient": recipient,
        "created_at": now,
        "data": encode_event_data(data),
    }


class Messages:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def accept(
        self,
        *,
        tenant_id: str,
        plan: AcceptancePlan,
        payload: bytes,
        category: str | None,
        batch_id: str | None,
        now: float,
    ) -> None:
        """Write the request payload, its messages and their first events atomically."""
        await self.accept_many([AcceptWrite(tenant_id, plan, payload, category, batch_id, now)])

    async def accept_many(
        self, writes: Sequence[AcceptWrite | PlannedAccept]
    ) -> list[AcceptancePlan]:
        """Write several accepted requests in one transaction: all of them, or none
        (group commit, ``services.accept_batch``); returns their plans, in order.

        A :class:`PlannedAccept` is planned in the transaction, from the suppression
        lists read there: its read and its write are one worker-thread round trip.
        """

        def fn(conn: sa.Connection) -> list[AcceptancePlan]:
            request_rows: list[dict[str, Any]] = []
            message_rows: list[dict[str, Any]] = []
            event_rows: list[dict[str, Any]] = []
            plans = []
            planned = [w for w in writes if isinstance(w, PlannedAccept)]
            lists = iter(
                send_lists_in(
                    conn, [(w.tenant_id, w.suppression_keys, w.asm_group_id) for w in planned]
                )
            )
            for w in writes:
                if isinstance(w, PlannedAccept):
                    w = AcceptWrite(
                        w.tenant_id, w.plan(next(lists)), w.payload, w.category, w.batch_id, w.now
                    )
                plans.append(w.plan)
                _accept_rows(w, request_rows, message_rows, event_rows)
            conn.execute(send_requests.insert(), request_rows)
            if message_rows:
                conn.execute(messages.insert(), message_rows)
                append_events(conn, event_rows)
            return plans

        if not writes:
            return []
        return await self._db.write(fn)

    async def payload(self, request_id: str) -> bytes | None:
        def fn(conn: sa.Connection) -> bytes | None:
            blob = conn.execute(
                sa.select(send_requests.c.payload).where(send_requests.c.id == request_id)
            ).scalar()
            return zlib.decompress(blob) if blob is not None else None

        return await self._db.read(fn)

    async def get(self, tenant_id: str | None, message_id: str) -> Message | None:
        """One message; ``tenant_id`` None is for operators and internal services."""

        def fn(conn: sa.Connection) -> Message | None:
            query = sa.select(messages).where(messages.c.id == message_id)
            if tenant_id is not None:
                query = query.where(messages.c.tenant_id == tenant_id)
            row = conn.execute(query).first()
            return message_from_row(row) if row else None

        return await self._db.read(fn)

    async def search(
        self,
        tenant_id: str,
        filters: MessageFilter,
        *,
        limit: int,
        before: tuple[float, str] | None = None,
    ) -> list[Message]:
        """Newest first; ``before`` is the (created_at, id) cursor of the previous page."""
        conds = [messages.c.tenant_id == tenant_id]
        if filters.status is not None:
            conds.append(messages.c.status == filters.status.value)
        if filters.recipient:
            conds.append(messages.c.recipient == filters.recipient)
        if filters.from_email:
            conds.append(messages.c.from_email == filters.from_email)
        if filters.category:
            conds.append(messages.c.category == filters.category)
        if filters.x_message_id:
            conds.append(messages.c.request_id == filters.x_message_id)
        if filters.created_after is not None:
            conds.append(messages.c.created_at >= filters.created_after)
        if filters.created_before is not None:
            conds.append(messages.c.created_at < filters.created_before)
        if before is not None:
            conds.append(sa.tuple_(messages.c.created_at, messages.c.id) < sa.tuple_(*before))

        def fn(conn: sa.Connection) -> list[Message]:
            query = (
                sa.select(messages)
                .where(*conds)
                .order_by(messages.c.created_at.desc(), messages.c.id.desc())
                .limit(limit)
            )
            return [message_from_row(r) for r in conn.execute(query).all()]

        return await self._db.read(fn)

    async def events_for(self, message_id: str) -> list[Event]:
        def fn(conn: sa.Connection) -> list[Event]:
            rows = conn.execute(
                sa.select(events).where(events.c.message_id == message_id).order_by(events.c.seq)
            ).all()
            return [_event(r) for r in rows]

        return await self._db.read(fn)

    async def events_for_request(self, request_id: str) -> list[Event]:
        def fn(conn: sa.Connection) -> list[Event]:
            ids = sa.select(messages.c.id).where(messages.c.request_id == request_id)
            rows = conn.execute(
                sa.select(events).where(events.c.message_id.in_(ids)).order_by(events.c.seq)
            ).all()
            return [_event(r) for r in rows]

        return await self._db.read(fn)

    async def retry(self, tenant_id: str, message_id: str, *, actor: str) -> ActionOutcome:
        return await self._act(tenant_id, message_id, actor=actor, action="retry")

    async def cancel(self, tenant_id: str, message_id: str, *, actor: str) -> ActionOutcome:
        return await self._act(tenant_id, message_id, actor=actor, action="cancel")

    async def _act(
        self, tenant_id: str, message_id: str, *, actor: str, action: str
    ) -> ActionOutcome:
        now = time.time()

        def fn(conn: sa.Connection) -> ActionOutcome:
            where = (messages.c.id == message_id, messages.c.tenant_id == tenant_id)
            row = conn.execute(sa.select(messages).where(*where)).first()
            if row is None:
                return ActionOutcome(None)
            current = message_from_row(row)
            lease_expired = current.lease_until is None or current.lease_until < now
            if action == "retry":
                refusal = retry_refusal(current.status, lease_expired=lease_expired)
                values: dict[str, Any] = {
                    "status": MessageStatus.QUEUED.value,
                    "due_at": now,
                    "lease_owner": None,
                    "lease_until": None,
                    "error_message": None,
                    "updated_at": now,
                }
                event_type = "requeued"
            else:
                refusal = cancel_refusal(current.status)
                values = {
                    "status": MessageStatus.CANCELLED.value,
                    "updated_at": now,
                    "error_message": f"cancelled by {actor}",
                }
                event_type = "cancelled"
            if refusal is not None:
                return ActionOutcome(current, refusal)
            # Compare-and-set on the status read above: a delivery that raced us wins.
            result = conn.execute(
                messages.update()
                .where(*where, messages.c.status == current.status.value)
                .values(**values)
            )
            if result.rowcount != 1:
                fresh = message_from_row(conn.execute(sa.select(messages).where(*where)).one())
                return ActionOutcome(fresh, f"message changed to {fresh.status} meanwhile")
            append_events(
                conn,
                [
                    event_row(
                        tenant_id,
                        message_id,
                        event_type,
                        current.recipient,
                        {"by": actor, "previous_status": current.status.value},
                        now,
                    )
                ],
            )
            return ActionOutcome(
                message_from_row(conn.execute(sa.select(messages).where(*where)).one())
            )

        return await self._db.write(fn)

    async def fail(
        self, message_id: str, *, reason: str, error_message: str, now: float
    ) -> Message | None:
        """Make a message FAILED with a sentence saying why, and record a ``dropped`` event.

        Only a message not yet in a terminal state changes; returns it as it is after.
        """
        terminal = [s.value for s in TERMINAL]

        def fn(conn: sa.Connection) -> Message | None:
            row = conn.execute(sa.select(messages).where(messages.c.id == message_id)).first()
            if row is None:
                return None
            current = message_from_row(row)
            if current.status.value in terminal:
                return current
            conn.execute(
                messages.update()
                .where(messages.c.id == message_id, messages.c.status.not_in(terminal))
                .values(
                    status=MessageStatus.FAILED.value,
                    error_message=error_message,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
            append_events(
                conn,
                [
                    event_row(
                        current.tenant_id,
                        message_id,
                        "dropped",
                        current.recipient,
                        {
                            "x_message_id": current.request_id,
                            "reason": reason,
                            "reason_text": error_message,
                        },
                        now,
                    )
                ],
            )
            return message_from_row(
                conn.execute(sa.select(messages).where(messages.c.id == message_id)).one()
            )

        return await self._db.write(fn)

    async def waiting_count(self) -> int:
        """Messages waiting for delivery (QUEUED or DEFERRED), counted over ``ix_messages_due``."""

        def fn(conn: sa.Connection) -> int:
            query = (
                sa.select(sa.func.count())
                .select_from(messages)
                .where(sa.text("status IN ('QUEUED', 'DEFERRED')"))  # the index's own predicate
            )
            return int(conn.execute(query).scalar_one())

        return await self._db.read(fn)

    async def count_by_status(self, tenant_id: str | None = None) -> dict[str, int]:
        def fn(conn: sa.Connection) -> dict[str, int]:
            query = sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status)
            if tenant_id is not None:
                query = query.where(messages.c.tenant_id == tenant_id)
            return {status: int(n) for status, n in conn.execute(query).all()}

        return await self._db.read(fn)


def first_category(categories: Sequence[str]) -> str | None:
    return categories[0] if categories else None
