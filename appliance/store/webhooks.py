"""Webhooks of a tenant, their outbox and their delivery log.

The outbox (``webhook_outbox``) is written with each event by
``store.event_log.append_events``; this module reads it for the dispatcher
(``due``), removes what a receiver took (``delete_delivered``) and puts the
rest back with a later due time (``reschedule``). Each POST is recorded in
``webhook_deliveries``. A webhook turned off, by its owner (``enabled``
false) or by sustained failure (``disabled_at``), keeps collecting outbox
rows; :meth:`Webhooks.enable` makes them due at once, so nothing is lost.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from appliance.domain.ids import new_id
from appliance.domain.webhook_payloads import MessageOrigin, WebhookFormat
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import Event, event_row
from appliance.store.schema import events, messages, webhook_deliveries, webhook_outbox, webhooks

DISABLED_EVENT = "webhook_disabled"


# A claimed outbox row belongs to one dispatcher this long (longer than a POST's timeout).
CLAIM_LEASE_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    tenant_id: str
    url: str
    friendly_name: str | None
    enabled: bool
    event_types: tuple[str, ...]  # () = every event
    format: WebhookFormat
    signed: bool
    signing_public_key: str | None
    signing_private_key: str | None  # secret-box token
    disabled_at: float | None
    disabled_reason: str | None
    failing_since: float | None
    created_at: float
    updated_at: float

    def __repr__(self) -> str:  # keep the key token out of logs
        return f"Webhook({self.id!r}, {self.url!r}, enabled={self.enabled})"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    attempts: int
    event: Event
    origin: MessageOrigin | None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    id: int
    webhook_id: str
    attempted_at: float
    events: int
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_snippet: str | None
    test: bool


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        friendly_name=row.friendly_name,
        enabled=bool(row.enabled),
        event_types=tuple(json.loads(row.event_types or "[]")),
        format=row.format,
        signed=bool(row.signed),
        signing_public_key=row.signing_public_key,
        signing_private_key=row.signing_private_key,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(hook: Webhook) -> dict[str, Any]:
    return {
        "url": hook.url,
        "friendly_name": hook.friendly_name,
        "enabled": hook.enabled,
        "event_types": json.dumps(list(hook.event_types)),
        "format": hook.format,
        "signed": hook.signed,
        "signing_public_key": hook.signing_public_key,
        "signing_private_key": hook.signing_private_key,
        "disabled_at": hook.disabled_at,
        "disabled_reason": hook.disabled_reason,
        "failing_since": hook.failing_since,
    }


def _attempt(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        row.id,
        row.webhook_id,
        row.attempted_at,
        row.events,
        row.status_code,
        row.latency_ms,
        row.error,
        row.response_snippet,
        bool(row.test),
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


def _select(c: sa.Connection, webhook_id: str, tenant_id: str | None = None) -> Webhook | None:
    query = sa.select(webhooks).where(webhooks.c.id == webhook_id)
    if tenant_id is not None:
        query = query.where(webhooks.c.tenant_id == tenant_id)
    row = c.execute(query).first()
    return _webhook(row) if row else None


def _origins(c: sa.Connection, message_ids: set[str]) -> dict[str, MessageOrigin]:
    """Sender, categories and custom args of each message, from its first event's data."""
    if not message_ids:
        return {}
    senders = dict(
        c.execute(
            sa.select(messages.c.id, messages.c.from_email).where(messages.c.id.in_(message_ids))
        ).all()
    )
    first: dict[str, dict[str, Any]] = {}
    rows = c.execute(
        sa.select(events.c.message_id, events.c.data)
        .where(
            events.c.message_id.in_(message_ids),
            events.c.event_type.in_(("processed", "dropped")),
        )
        .order_by(events.c.seq)
    ).all()
    for message_id, data in rows:
        first.setdefault(message_id, json.loads(data))
    return {
        m: MessageOrigin(
            senders.get(m),
            tuple(first.get(m, {}).get("category") or ()),
            dict(first.get(m, {}).get("custom_args") or {}),
        )
        for m in message_ids
    }


class Webhooks:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- CRUD --------------------------------------------------------------

    async def create(
        self,
        *,
        tenant_id: str,
        url: str,
        friendly_name: str | None = None,
        enabled: bool = True,
        event_types: Sequence[str] = (),
        format: WebhookFormat = "postyard",
        signing_keys: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> Webhook:
        """``signing_keys``: (public key text, encrypted private key), when signed."""
        now = time.time() if now is None else now
        public, private = signing_keys or (None, None)
        hook = Webhook(
            new_id("whk", now=now),
            tenant_id,
            url,
            friendly_name,
            enabled,
            tuple(event_types),
            format,
            signing_keys is not None,
            public,
            private,
            None,
            None,
            None,
            now,
            now,
        )

        def fn(c: sa.Connection) -> Webhook:
            c.execute(
                webhooks.insert().values(
                    id=hook.id, tenant_id=tenant_id, created_at=now, updated_at=now, **_values(hook)
                )
            )
            return hook

        return await self._db.write(fn)

    async def get(self, tenant_id: str, webhook_id: str) -> Webhook | None:
        return await self._db.read(lambda c: _select(c, webhook_id, tenant_id))

    async def find(self, webhook_id: str) -> Webhook | None:
        """Any tenant's webhook by id (the dispatcher's view)."""
        return await self._db.read(lambda c: _select(c, webhook_id))

    async def list(self, tenant_id: str | None = None) -> builtins.list[Webhook]:
        """A tenant's webhooks (every tenant's when None), oldest first."""

        def fn(c: sa.Connection) -> builtins.list[Webhook]:
            query = sa.select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)
            if tenant_id is not None:
                query = query.where(webhooks.c.tenant_id == tenant_id)
            return [_webhook(r) for r in c.execute(query).all()]

        return await self._db.read(fn)

    async def update(self, hook: Webhook, *, now: float | None = None) -> Webhook | None:
        """Write every setting of ``hook`` (found by id and tenant); None if it is gone."""
        now = time.time() if now is None else now

        def fn(c: sa.Connection) -> Webhook | None:
            c.execute(
                webhooks.update()
                .where(webhooks.c.id == hook.id, webhooks.c.tenant_id == hook.tenant_id)
                .values(updated_at=now, **_values(hook))
            )
            return _select(c, hook.id, hook.tenant_id)

        return await self._db.write(fn)

    async def delete(self, tenant_id: str, webhook_id: str) -> bool:
        def fn(c: sa.Connection) -> bool:
            where = (webhooks.c.id == webhook_id, webhooks.c.tenant_id == tenant_id)
            if c.execute(sa.select(webhooks.c.id).where(*where)).first() is None:
                return False
            # Explicit: SQLite enforces ON DELETE CASCADE only with foreign keys on.
            c.execute(webhook_outbox.delete().where(webhook_outbox.c.webhook_id == webhook_id))
            c.execute(
                webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == webhook_id)
            )
            c.execute(webhooks.delete().where(*where))
            return True

        return await self._db.write(fn)

    # -- turning off and on ------------------------------------------------

    async def enable(self, tenant_id: str, webhook_id: str, *, now: float) -> Webhook | None:
        """Turn the webhook on, forget its failure streak, make its pending events due now."""

        def fn(c: sa.Connection) -> Webhook | None:
            hook = _select(c, webhook_id, tenant_id)
            if hook is None:
                return None
            on = replace(hook, enabled=True, disabled_at=None, disabled_reason=None)
            c.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id)
                .values(updated_at=now, **_values(replace(on, failing_since=None)))
            )
            c.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.webhook_id == webhook_id)
                .values(due_at=now, attempts=0)
            )
            return _select(c, webhook_id)

        return await self._db.write(fn)

    async def disable(self, webhook_id: str, *, reason: str, now: float) -> Webhook | None:
        """Turn the webhook off after sustained failure and append the alert event, atomically."""

        def fn(c: sa.Connection) -> Webhook | None:
            hook = _select(c, webhook_id)
            if hook is None or not hook.enabled:
                return hook
            c.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id)
                .values(enabled=False, disabled_at=now, disabled_reason=reason, updated_at=now)
            )
            data = {
                "webhook_id": hook.id,
                "url": hook.url,
                "reason": reason,
                "failing_since": hook.failing_since,
            }
            append_events(c, [event_row(hook.tenant_id, None, DISABLED_EVENT, None, data, now)])
            return _select(c, webhook_id)

        return await self._db.write(fn)

    async def set_failing_since(self, webhook_id: str, since: float | None) -> None:
        def fn(c: sa.Connection) -> None:
            c.execute(
                webhooks.update().where(webhooks.c.id == webhook_id).values(failing_since=since)
            )

        await self._db.write(fn)

    # -- outbox ------------------------------------------------------------

    async def due(
        self, webhook_id: str, limit: int, now: float, *, lease: float = CLAIM_LEASE_SECONDS
    ) -> builtins.list[OutboxItem]:
        """Claim up to ``limit`` pending events due by ``now``, oldest first, with their origins.

        Claimed rows are pushed ``lease`` seconds into the future, so another node's
        dispatcher does not post them too; the caller deletes them once delivered or
        reschedules them, and a crashed node's claims come due again after the lease.
        """

        def fn(c: sa.Connection) -> builtins.list[OutboxItem]:
            due = (
                sa.select(webhook_outbox.c.id)
                .where(
                    webhook_outbox.c.webhook_id == webhook_id,
                    webhook_outbox.c.due_at <= now,
                )
                .order_by(webhook_outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if lease > 0:  # one statement: atomic on SQLite too (several stores, one file)
                claim = (
                    webhook_outbox.update()
                    .where(webhook_outbox.c.id.in_(due.scalar_subquery()))
                    .values(due_at=now + lease)
                    .returning(webhook_outbox.c.id)
                )
                ids = [row.id for row in c.execute(claim).all()]
            else:
                ids = [row.id for row in c.execute(due).all()]
            if not ids:
                return []
            rows = c.execute(
                sa.select(
                    webhook_outbox.c.id.label("outbox_id"),
                    webhook_outbox.c.attempts,
                    *events.c,
                )
                .join(events, events.c.id == webhook_outbox.c.event_id)
                .where(webhook_outbox.c.id.in_(ids))
                .order_by(webhook_outbox.c.id)
            ).all()
            origins = _origins(c, {r.message_id for r in rows if r.message_id})
            return [
                OutboxItem(r.outbox_id, r.attempts, _event(r), origins.get(r.message_id or ""))
                for r in rows
            ]

        return await self._db.write(fn)

    async def next_due(self, webhook_id: str) -> float | None:
        def fn(c: sa.Connection) -> float | None:
            query = sa.select(sa.func.min(webhook_outbox.c.due_at)).where(
                webhook_outbox.c.webhook_id == webhook_id
            )
            value = c.execute(query).scalar()
            return None if value is None else float(value)

        return await self._db.read(fn)

    async def pending(self) -> dict[str, int]:
        """Outbox rows per webhook (every webhook with any)."""

        def fn(c: sa.Connection) -> dict[str, int]:
            query = sa.select(webhook_outbox.c.webhook_id, sa.func.count()).group_by(
                webhook_outbox.c.webhook_id
            )
            return {w: int(n) for w, n in c.execute(query).all()}

        return await self._db.read(fn)

    async def delete_delivered(self, ids: Sequence[int]) -> None:
        if not ids:
            return

        def fn(c: sa.Connection) -> None:
            c.execute(webhook_outbox.delete().where(webhook_outbox.c.id.in_(list(ids))))

        await self._db.write(fn)

    async def reschedule(self, ids: Sequence[int], due_at: float, error: str) -> None:
        """Put rows back for a later attempt, counting it."""
        if not ids:
            return

        def fn(c: sa.Connection) -> None:
            c.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id.in_(list(ids)))
                .values(
                    due_at=due_at,
                    attempts=webhook_outbox.c.attempts + 1,
                    last_error=error[:1000],
                )
            )

        await self._db.write(fn)

    async def release(self, ids: Sequence[int], now: float) -> None:
        """Give claimed rows back unsent (due now, no attempt counted)."""
        if not ids:
            return

        def fn(c: sa.Connection) -> None:
            c.execute(
                webhook_outbox.update().where(webhook_outbox.c.id.in_(list(ids))).values(due_at=now)
            )

        await self._db.write(fn)

    # -- delivery log ------------------------------------------------------

    async def record_attempt(
        self,
        webhook_id: str,
        *,
        attempted_at: float,
        events: int,
        status_code: int | None,
        latency_ms: float | None,
        error: str | None,
        response_snippet: str | None,
        test: bool = False,
    ) -> None:
        def fn(c: sa.Connection) -> None:
            c.execute(
                webhook_deliveries.insert().values(
                    webhook_id=webhook_id,
                    attempted_at=attempted_at,
                    events=events,
                    status_code=status_code,
                    latency_ms=latency_ms,
                    error=error,
                    response_snippet=response_snippet,
                    test=test,
                )
            )

        await self._db.write(fn)

    async def attempts(self, webhook_id: str, limit: int = 100) -> builtins.list[DeliveryAttempt]:
        """The most recent attempts first."""

        def fn(c: sa.Connection) -> builtins.list[DeliveryAttempt]:
            query = (
                sa.select(webhook_deliveries)
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .order_by(webhook_deliveries.c.attempted_at.desc(), webhook_deliveries.c.id.desc())
                .limit(limit)
            )
            return [_attempt(r) for r in c.execute(query).all()]

        return await self._db.read(fn)
