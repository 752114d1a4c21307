"""The delivery queue: claims with leases, progress, outcomes, and crash recovery.

The queue is the ``messages`` table (see ``schema``). A node *claims* due rows
by setting a lease (``lease_owner``, ``lease_until``) in the same statement
that selects them, so two claimers never get the same row: PostgreSQL locks
the chosen rows with ``FOR UPDATE SKIP LOCKED`` (a second node takes the next
rows instead of waiting), SQLite has one writer. A node that dies leaves
leases that expire; ``release_expired`` puts those rows back in the queue.

Every status test that should use a partial index (``ix_messages_due``,
``ix_messages_lease``) spells the index's own predicate with literal values:
SQLite and PostgreSQL's generic plans can use a partial index only when the
query implies its WHERE clause without looking at bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.acceptance import suppression_key
from appliance.domain.delivery_outcome import DeliveryOutcome
from appliance.domain.message_status import MessageStatus
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import Message, event_row, message_from_row
from appliance.store.schema import CLAIMABLE_STATUSES, IN_FLIGHT_STATUSES, messages
from appliance.store.suppressions import insert_or_keep, suppression_row

# What a row may be advanced to, and from which in-flight statuses.
_ADVANCES_FROM: dict[MessageStatus, tuple[MessageStatus, ...]] = {
    MessageStatus.RENDERED: (MessageStatus.PROCESSING,),
    MessageStatus.SENDING: (MessageStatus.PROCESSING, MessageStatus.RENDERED),
}
# Statuses an attempt's outcome may leave a message in.
_OUTCOME_STATUSES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.DEFERRED,
        MessageStatus.BOUNCED,
        MessageStatus.FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    due: int  # claimable now (QUEUED/DEFERRED, due_at <= now)
    scheduled: int  # claimable later (due_at > now)
    in_flight: int  # PROCESSING/RENDERED/SENDING
    oldest_due_age: float | None  # now - min(due_at) over due rows


def _status_in(statuses: Sequence[str]) -> sa.ColumnElement[bool]:
    """``status IN ('A', 'B')`` with literals, in the order given.

    SQLite matches a partial index's ``IN`` term as written, so the claimable
    and in-flight tests use the tuples the index definitions use.
    """
    return messages.c.status.in_([sa.literal_column(f"'{v}'") for v in statuses])


def _claimable() -> sa.ColumnElement[bool]:
    return _status_in(CLAIMABLE_STATUSES)


def _in_flight() -> sa.ColumnElement[bool]:
    return _status_in(IN_FLIGHT_STATUSES)


def _back_in_queue() -> sa.Case[Any]:
    """QUEUED for a message never attempted, DEFERRED for one waiting for a retry."""
    return sa.case(
        (messages.c.attempts == 0, MessageStatus.QUEUED.value),
        else_=MessageStatus.DEFERRED.value,
    )


def claim_statement(owner: str, *, limit: int, lease_seconds: float, now: float) -> sa.Update:
    """The one statement a claim runs (public so tests can EXPLAIN it).

    ``FOR UPDATE SKIP LOCKED`` is rendered on PostgreSQL only; SQLite ignores it.
    """
    due = (
        sa.select(messages.c.id)
        .where(_claimable(), messages.c.due_at <= now)
        .order_by(messages.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        messages.update()
        .where(messages.c.id.in_(due.scalar_subquery()))
        .values(
            status=MessageStatus.PROCESSING.value,
            lease_owner=owner,
            lease_until=now + lease_seconds,
            updated_at=now,
        )
        .returning(*messages.c)
    )


def expired_leases_query(*, now: float, limit: int) -> sa.Select[Any]:
    """In-flight rows whose lease ran out, locked for the release (public for EXPLAIN)."""
    return (
        sa.select(messages.c.id, messages.c.lease_owner, messages.c.status)
        .where(
            messages.c.lease_owner.is_not(None),
            messages.c.lease_until < now,
            _in_flight(),
        )
        .order_by(messages.c.lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class DeliveryQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, owner: str, *, limit: int, lease_seconds: float, now: float
    ) -> list[Message]:
        """Take up to ``limit`` due messages, oldest due first, leased to ``owner``.

        They come back PROCESSING, as they are after the claim.
        """
        if limit <= 0:
            return []
        stmt = claim_statement(owner, limit=limit, lease_seconds=lease_seconds, now=now)

        def fn(conn: sa.Connection) -> list[Message]:
            claimed = [message_from_row(r) for r in conn.execute(stmt).all()]
            return sorted(claimed, key=lambda m: (m.due_at, m.id))

        return await self._db.write(fn)

    async def advance(
        self, owner: str, ids: Sequence[str], status: MessageStatus, *, now: float
    ) -> list[str]:
        """Move ``owner``'s in-flight messages on (to RENDERED or SENDING); returns the ids moved.

        A message whose lease was lost (released, or finished elsewhere) is left alone.
        """
        sources = _ADVANCES_FROM.get(status)
        if sources is None:
            raise ValueError(f"advance goes to RENDERED or SENDING, not {status}")
        if not ids:
            return []
        stmt = (
            messages.update()
            .where(
                messages.c.id.in_(list(ids)),
                messages.c.lease_owner == owner,
                _status_in([s.value for s in sources]),
            )
            .values(status=status.value, updated_at=now)
            .returning(messages.c.id)
        )
        return await self._db.write(lambda conn: list(conn.execute(stmt).scalars()))

    async def extend_leases(
        self, owner: str, ids: Sequence[str], *, until: float, now: float
    ) -> int:
        """Keep ``owner``'s in-flight messages leased until ``until``; returns how many."""
        if not ids:
            return 0
        stmt = (
            messages.update()
            .where(messages.c.id.in_(list(ids)), messages.c.lease_owner == owner, _in_flight())
            .values(lease_until=until, updated_at=now)
        )
        return await self._db.write(lambda conn: conn.execute(stmt).rowcount)

    async def release_expired(self, *, now: float, limit: int = 1000) -> list[str]:
        """Requeue in-flight messages whose lease ran out (their node died); returns their ids.

        Each gets a ``requeued`` event naming the node that held it and how far it got.
        """
        expired = expired_leases_query(now=now, limit=limit)

        def fn(conn: sa.Connection) -> list[str]:
            found = {r.id: r for r in conn.execute(expired).all()}
            if not found:
                return []
            released = conn.execute(
                messages.update()
                .where(
                    messages.c.id.in_(list(found)),
                    messages.c.lease_owner.is_not(None),
                    messages.c.lease_until < now,
                    _in_flight(),
                )
                .values(
                    status=_back_in_queue(),
                    due_at=now,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                .returning(messages.c.id, messages.c.tenant_id, messages.c.recipient)
            ).all()
            rows = sorted(released, key=lambda r: r.id)
            if rows:
                append_events(
                    conn,
                    [
                        event_row(
                            r.tenant_id,
                            r.id,
                            "requeued",
                            r.recipient,
                            {
                                "reason": "lease expired",
                                "previous_owner": found[r.id].lease_owner,
                                "previous_status": found[r.id].status,
                            },
                            now,
                        )
                        for r in rows
                    ],
                )
            return [r.id for r in rows]

        return await self._db.write(fn)

    async def postpone(
        self, owner: str, ids: Sequence[str], *, due_at: float, reason: str, now: float
    ) -> int:
        """Put ``owner``'s messages back without counting an attempt; returns how many.

        For a send that did not happen (a warm-up cap reached, the destination
        backing off, shutdown). ``reason`` is shown on the message page.
        """
        if not ids:
            return 0
        stmt = (
            messages.update()
            .where(messages.c.id.in_(list(ids)), messages.c.lease_owner == owner, _in_flight())
            .values(
                status=_back_in_queue(),
                due_at=due_at,
                lease_owner=None,
                lease_until=None,
                error_message=reason,
                updated_at=now,
            )
        )
        return await self._db.write(lambda conn: conn.execute(stmt).rowcount)

    async def record(self, outcomes: Sequence[DeliveryOutcome], *, now: float) -> list[str]:
        """Apply attempt outcomes in one transaction; returns the message ids applied.

        An outcome applies only while its message is in flight: one already
        finished, cancelled or requeued is left as it is. Each applied outcome
        writes its event and, when it says so, a suppression entry.
        """
        for outcome in outcomes:
            _check_outcome(outcome)
        if not outcomes:
            return []
        by_id: dict[str, DeliveryOutcome] = {}
        for outcome in outcomes:
            by_id.setdefault(outcome.message_id, outcome)  # the first outcome per message wins
        current = (
            sa.select(messages.c.id, messages.c.tenant_id, messages.c.recipient)
            .where(messages.c.id.in_(sorted(by_id)), _in_flight())
            .order_by(messages.c.id)
            .with_for_update()
        )
        update = (
            messages.update()
            .where(messages.c.id == sa.bindparam("m_id"), _in_flight())
            .values(
                status=sa.bindparam("m_status"),
                attempts=sa.bindparam("m_attempts"),
                due_at=sa.func.coalesce(
                    sa.bindparam("m_due_at", type_=sa.Float), messages.c.due_at
                ),
                last_reply=sa.bindparam("m_last_reply"),
                error_message=sa.bindparam("m_error_message"),
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )

        def fn(conn: sa.Connection) -> list[str]:
            # Locked (PostgreSQL) or under the single writer (SQLite): they stay in flight.
            rows = conn.execute(current).all()
            if not rows:
                return []
            applied = [(r, by_id[r.id]) for r in rows]
            conn.execute(update, [_update_params(o) for _, o in applied])
            append_events(
                conn,
                [
                    event_row(r.tenant_id, r.id, o.event_type, r.recipient, o.event_data, now)
                    for r, o in applied
                ],
            )
            insert_or_keep(
                conn,
                [
                    suppression_row(
                        r.tenant_id,
                        o.suppression.list_name,
                        suppression_key(r.recipient),
                        reason=o.suppression.reason,
                        status=o.suppression.status,
                        message_id=r.id,
                        now=now,
                    )
                    for r, o in applied
                    if o.suppression is not None
                ],
            )
            return [r.id for r, _ in applied]

        return await self._db.write(fn)

    async def next_due(self, *, now: float) -> float | None:
        """When a claim can next find work: the earliest ``due_at`` of a waiting
        message, never before ``now``; None when nothing waits."""
        query = sa.select(sa.func.min(messages.c.due_at)).where(_claimable())

        def fn(conn: sa.Connection) -> float | None:
            earliest = conn.execute(query).scalar()
            return None if earliest is None else max(float(earliest), now)

        return await self._db.read(fn)

    async def depth(self, *, now: float) -> QueueDepth:
        """How much is waiting, scheduled and in flight (for /readyz and /metrics)."""
        is_due = messages.c.due_at <= now
        waiting = sa.select(
            sa.func.count().filter(is_due),
            sa.func.count().filter(sa.not_(is_due)),
            sa.func.min(messages.c.due_at).filter(is_due),
        ).where(_claimable())
        # Every in-flight message is leased, so the lease index counts them.
        in_flight = (
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.lease_owner.is_not(None), _in_flight())
        )

        def fn(conn: sa.Connection) -> QueueDepth:
            due, scheduled, oldest = conn.execute(waiting).one()
            flying = conn.execute(in_flight).scalar_one()
            return QueueDepth(
                due=int(due or 0),
                scheduled=int(scheduled or 0),
                in_flight=int(flying),
                oldest_due_age=None if oldest is None else now - float(oldest),
            )

        return await self._db.read(fn)


def _check_outcome(outcome: DeliveryOutcome) -> None:
    if outcome.status not in _OUTCOME_STATUSES:
        raise ValueError(
            f"outcome for {outcome.message_id} has status {outcome.status}; "
            "an attempt ends DELIVERED, DEFERRED, BOUNCED or FAILED"
        )
    if outcome.status is MessageStatus.DEFERRED and outcome.due_at is None:
        raise ValueError(f"DEFERRED outcome for {outcome.message_id} needs due_at")


def _update_params(outcome: DeliveryOutcome) -> dict[str, Any]:
    return {
        "m_id": outcome.message_id,
        "m_status": outcome.status.value,
        "m_attempts": outcome.attempts,
        "m_due_at": outcome.due_at if outcome.status is MessageStatus.DEFERRED else None,
        "m_last_reply": outcome.last_reply,
        "m_error_message": outcome.error_message,
    }
