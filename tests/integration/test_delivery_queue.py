"""The delivery queue and send counters on both engines (SQLite file, fresh PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
import trio

from appliance.domain.acceptance import AcceptancePlan, NewEvent, NewMessage
from appliance.domain.delivery_outcome import DeliveryOutcome, SuppressionEntry
from appliance.domain.ids import new_id
from appliance.domain.message_status import MessageStatus
from appliance.store.messages import Message
from appliance.store.queue import QueueDepth, claim_statement, expired_leases_query
from appliance.store.schema import messages
from appliance.store.store import Store

T0 = 1_800_000_000.0
LEASE = 60.0
QUEUED, DEFERRED = MessageStatus.QUEUED, MessageStatus.DEFERRED
PROCESSING, RENDERED, SENDING = (
    MessageStatus.PROCESSING,
    MessageStatus.RENDERED,
    MessageStatus.SENDING,
)
DELIVERED, BOUNCED = MessageStatus.DELIVERED, MessageStatus.BOUNCED


async def enqueue(
    store: Store, due_ats: Sequence[float], *, recipients: Sequence[str] | None = None
) -> list[str]:
    """Accept one QUEUED message per ``due_at`` (as /v3/mail/send would); returns their ids."""
    tenant = await store.tenants.create("Queue test")
    names = recipients or [f"rcpt{i}@example.org" for i in range(len(due_ats))]
    new = [
        NewMessage(
            id=new_id("msg", now=T0),
            personalization=i,
            recipient=name,
            from_email="sender@example.com",
            subject="Hello",
            status=QUEUED,
            due_at=due_at,
            error_message=None,
        )
        for i, (name, due_at) in enumerate(zip(names, due_ats, strict=True))
    ]
    processed = [NewEvent(new_id("evt", now=T0), m.id, "processed", m.recipient, {}) for m in new]
    plan = AcceptancePlan(new_id("req", now=T0), tuple(new), tuple(processed))
    await store.messages.accept(
        tenant_id=tenant.id, plan=plan, payload=b"{}", category=None, batch_id=None, now=T0
    )
    return [m.id for m in plan.messages]


async def set_columns(store: Store, ids: Sequence[str], **values: Any) -> None:
    await store.db.write(
        lambda conn: conn.execute(messages.update().where(messages.c.id.in_(ids)).values(**values))
    )


async def load(store: Store, message_id: str) -> Message:
    message = await store.messages.get(None, message_id)
    assert message is not None
    return message


async def event_types(store: Store, message_id: str) -> list[str]:
    """The message's events after its ``processed`` one."""
    found = [e.event_type for e in await store.messages.events_for(message_id)]
    assert found[0] == "processed"
    return found[1:]


async def claim(store: Store, owner: str, limit: int = 100, now: float = T0) -> list[Message]:
    return await store.queue.claim(owner, limit=limit, lease_seconds=LEASE, now=now)


# --- claim -------------------------------------------------------------------------------


async def test_claim_takes_the_oldest_due_first_up_to_the_limit(store: Store) -> None:
    ids = await enqueue(store, [T0 - 50, T0 - 10, T0 - 30, T0 - 20, T0 - 40])
    by_age = [ids[0], ids[4], ids[2], ids[3], ids[1]]

    first = await store.queue.claim("node-a", limit=3, lease_seconds=LEASE, now=T0)

    assert [m.id for m in first] == by_age[:3]
    for m in first:
        assert (m.status, m.lease_owner, m.lease_until, m.updated_at) == (
            PROCESSING,
            "node-a",
            T0 + LEASE,
            T0,
        )
        assert await load(store, m.id) == m  # returned as stored after the update
    second = await claim(store, "node-b", limit=3, now=T0 + 1)
    assert [m.id for m in second] == by_age[3:]
    assert {m.lease_owner for m in second} == {"node-b"}
    assert await claim(store, "node-a", now=T0 + 2) == []
    assert await store.queue.claim("node-a", limit=0, lease_seconds=LEASE, now=T0) == []


async def test_claim_skips_future_terminal_and_in_flight_rows(store: Store) -> None:
    due_queued, due_deferred, future, delivered, failed, cancelled, flying = await enqueue(
        store, [T0 - 5, T0 - 4, T0 + 30, T0 - 9, T0 - 8, T0 - 7, T0 - 6]
    )
    await set_columns(store, [due_deferred], status="DEFERRED", attempts=2)
    await set_columns(store, [delivered], status="DELIVERED", attempts=1)
    await set_columns(store, [failed], status="FAILED")
    await set_columns(store, [cancelled], status="CANCELLED")
    await set_columns(store, [flying], status="SENDING", lease_owner="node-x", lease_until=T0 + 100)

    claimed = await claim(store, "node-a")

    assert [m.id for m in claimed] == [due_queued, due_deferred]
    assert claimed[1].attempts == 2  # a claim is not an attempt
    assert (await load(store, flying)).lease_owner == "node-x"
    assert (await load(store, future)).status is QUEUED
    assert [m.id for m in await claim(store, "node-a", now=T0 + 30)] == [future]


async def test_claim_and_release_use_the_partial_indexes(store: Store) -> None:
    """EXPLAIN on both engines: the claim reads ix_messages_due, the reaper ix_messages_lease."""
    await enqueue(store, [T0 - i for i in range(50)])

    def plans(conn: sa.Connection) -> tuple[str, str]:
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            conn.exec_driver_sql("ANALYZE messages")
            # A tiny table is cheaper to scan; the question is whether the index *can* serve.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        found = []
        for stmt in (
            claim_statement("node-a", limit=10, lease_seconds=LEASE, now=T0),
            expired_leases_query(now=T0, limit=10),
        ):
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            rows = conn.exec_driver_sql(prefix + sql).all()
            found.append("\n".join(str(r[-1]) for r in rows))
        return found[0], found[1]

    claim_plan, release_plan = await store.db.write(plans)
    assert "ix_messages_due" in claim_plan, claim_plan
    assert "ix_messages_lease" in release_plan, release_plan


async def test_concurrent_claimers_never_get_the_same_row(database_url: str) -> None:
    """Two stores (two nodes) on one database, three claim loops each, racing through trio."""
    a = await Store.open(database_url)
    b = await Store.open(database_url, migrate_schema=False)
    try:
        ids = await enqueue(a, [T0 - (i % 37) for i in range(300)])
        taken: dict[str, list[str]] = {"a1": [], "a2": [], "a3": [], "b1": [], "b2": [], "b3": []}

        async def claimer(node: Store, owner: str) -> None:
            while batch := await claim(node, owner, limit=7):
                taken[owner].extend(m.id for m in batch)
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for owner in taken:
                nursery.start_soon(claimer, a if owner.startswith("a") else b, owner)

        all_taken = [i for batch in taken.values() for i in batch]
        assert len(all_taken) == len(set(all_taken)) == len(ids)
        assert set(all_taken) == set(ids)
        assert sum(1 for batch in taken.values() if batch) >= 2  # the work was shared
        for owner, batch in taken.items():
            for message_id in batch[:5]:
                assert (await load(a, message_id)).lease_owner == owner
    finally:
        a.close()
        b.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgres_claim_skips_rows_another_claim_holds(database_url: str) -> None:
    """A claim never waits for another node's open claim: SKIP LOCKED takes the next rows.

    (Row locks are PostgreSQL's; on SQLite one writer makes claims take turns.)
    """
    a = await Store.open(database_url)
    b = await Store.open(database_url, migrate_schema=False)
    try:
        ids = await enqueue(a, [T0 - 10 + i for i in range(6)])
        locked = trio.Event()
        release = threading.Event()
        token = trio.lowlevel.current_trio_token()

        def hold_oldest_three() -> None:
            with a.db.writer.connect() as conn, conn.begin():
                conn.execute(
                    sa.select(messages.c.id).order_by(messages.c.due_at).limit(3).with_for_update()
                ).all()
                trio.from_thread.run_sync(locked.set, trio_token=token)
                # Were the claim to wait for these locks, it would get them only now.
                release.wait(timeout=10)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, hold_oldest_three)
            await locked.wait()
            claimed = await claim(b, "node-b", limit=3)
            release.set()

        assert [m.id for m in claimed] == ids[3:]
    finally:
        a.close()
        b.close()


# --- advance, extend, release ------------------------------------------------------------


async def test_advance_only_moves_the_owners_in_flight_rows(store: Store) -> None:
    mine, theirs, waiting = await enqueue(store, [T0 - 3, T0 - 2, T0 + 50])
    await claim(store, "node-a", limit=1)
    await claim(store, "node-b", limit=1)

    assert await store.queue.advance("node-a", [mine, theirs, waiting], RENDERED, now=T0 + 1) == [
        mine
    ]
    assert (await load(store, mine)).status is RENDERED
    assert (await load(store, mine)).updated_at == T0 + 1
    assert (await load(store, theirs)).status is PROCESSING
    assert (await load(store, waiting)).status is QUEUED
    # RENDERED comes only from PROCESSING; SENDING from either.
    assert await store.queue.advance("node-a", [mine], RENDERED, now=T0 + 2) == []
    assert await store.queue.advance("node-a", [mine], SENDING, now=T0 + 2) == [mine]
    assert await store.queue.advance("node-b", [theirs], SENDING, now=T0 + 2) == [theirs]
    assert await store.queue.advance("node-a", [], SENDING, now=T0 + 2) == []
    with pytest.raises(ValueError, match="RENDERED or SENDING"):
        await store.queue.advance("node-a", [mine], DELIVERED, now=T0 + 3)


async def test_extend_leases_only_for_the_owner(store: Store) -> None:
    mine, theirs = await enqueue(store, [T0 - 2, T0 - 1])
    await claim(store, "node-a", limit=1)
    await claim(store, "node-b", limit=1)

    assert await store.queue.extend_leases("node-a", [mine, theirs], until=T0 + 500, now=T0) == 1
    assert (await load(store, mine)).lease_until == T0 + 500
    assert (await load(store, theirs)).lease_until == T0 + LEASE


async def test_release_expired_requeues_a_dead_nodes_rows_with_events(store: Store) -> None:
    fresh, retried, alive = await enqueue(store, [T0 - 3, T0 - 2, T0 - 1])
    await set_columns(store, [retried], status="DEFERRED", attempts=2)
    await claim(store, "node-dead", limit=2)
    await store.queue.advance("node-dead", [retried], SENDING, now=T0)
    await claim(store, "node-alive", now=T0 + 30)  # lease until T0 + 90
    later = T0 + LEASE + 1

    assert await store.queue.release_expired(now=later) == sorted([fresh, retried])

    for message_id, status, previous in (
        (fresh, QUEUED, "PROCESSING"),
        (retried, DEFERRED, "SENDING"),
    ):
        m = await load(store, message_id)
        assert (m.status, m.due_at, m.lease_owner, m.lease_until) == (status, later, None, None)
        requeued = (await store.messages.events_for(message_id))[-1]
        assert requeued.event_type == "requeued"
        assert requeued.created_at == later
        assert requeued.data == {
            "reason": "lease expired",
            "previous_owner": "node-dead",
            "previous_status": previous,
        }
    assert (await load(store, retried)).attempts == 2
    assert (await load(store, alive)).lease_owner == "node-alive"
    assert await store.queue.release_expired(now=later) == []  # no second event
    assert await event_types(store, fresh) == ["requeued"]
    assert [m.id for m in await claim(store, "node-b", now=later)] == sorted([fresh, retried])


async def test_release_expired_honours_its_limit(store: Store) -> None:
    ids = await enqueue(store, [T0 - 3, T0 - 2, T0 - 1])
    await claim(store, "node-dead")
    later = T0 + LEASE + 1
    first = await store.queue.release_expired(now=later, limit=2)
    assert len(first) == 2
    assert await store.queue.release_expired(now=later, limit=2) == sorted(set(ids) - set(first))


# --- postpone ----------------------------------------------------------------------------


async def test_postpone_returns_rows_without_counting_an_attempt(store: Store) -> None:
    new, retried, theirs = await enqueue(store, [T0 - 3, T0 - 2, T0 - 1])
    await set_columns(store, [retried], status="DEFERRED", attempts=1)
    await claim(store, "node-a", limit=2)
    await claim(store, "node-b")
    reason = "Daily warm-up cap of pool warm1 reached; sending resumes tomorrow."

    assert (
        await store.queue.postpone(
            "node-a", [new, retried, theirs], due_at=T0 + 3600, reason=reason, now=T0 + 1
        )
        == 2
    )

    for message_id, status, attempts in ((new, QUEUED, 0), (retried, DEFERRED, 1)):
        m = await load(store, message_id)
        assert (m.status, m.attempts, m.due_at, m.error_message) == (
            status,
            attempts,
            T0 + 3600,
            reason,
        )
        assert (m.lease_owner, m.lease_until, m.updated_at) == (None, None, T0 + 1)
    assert (await load(store, theirs)).status is PROCESSING
    assert await claim(store, "node-a", now=T0 + 3599) == []
    assert [m.id for m in await claim(store, "node-a", now=T0 + 3600)] == sorted([new, retried])


# --- record ------------------------------------------------------------------------------


def outcome(message: Message, status: MessageStatus, **changes: Any) -> DeliveryOutcome:
    fields: dict[str, Any] = {
        "message_id": message.id,
        "tenant_id": message.tenant_id,
        "recipient": message.recipient,
        "status": status,
        "attempts": message.attempts + 1,
        "due_at": None,
        "last_reply": "250 2.0.0 OK queued as 7F2",
        "error_message": None,
        "event_type": "delivered",
        "event_data": {"smtp_response": "250 2.0.0 OK queued as 7F2"},
        "suppression": None,
    }
    fields.update(changes)
    return DeliveryOutcome(**fields)


async def test_record_applies_outcomes_with_events_and_suppressions(store: Store) -> None:
    ids = await enqueue(
        store,
        [T0 - 4, T0 - 3, T0 - 2, T0 - 1],
        recipients=["ok@example.org", "busy@example.org", "Gone.User@example.org", "q@x.org"],
    )
    delivered, deferred, bounced, not_claimed = ids
    claimed = {m.id: m for m in await claim(store, "node-a", limit=3)}
    await store.queue.advance("node-a", list(claimed), SENDING, now=T0)
    hard = SuppressionEntry("bounces", "550 5.1.1 User unknown", "5.1.1")
    outcomes = [
        outcome(claimed[delivered], DELIVERED),
        outcome(
            claimed[deferred],
            DEFERRED,
            due_at=T0 + 60,
            last_reply="451 4.7.1 Greylisted",
            error_message="The receiving server asked us to try again later (greylisting).",
            event_type="deferred",
            event_data={"attempt": 1, "smtp_response": "451 4.7.1 Greylisted"},
        ),
        outcome(
            claimed[bounced],
            BOUNCED,
            last_reply="550 5.1.1 User unknown",
            error_message="The recipient's mailbox does not exist.",
            event_type="bounce",
            event_data={"bounce_type": "hard", "bounce_reason": "User unknown"},
            suppression=hard,
        ),
        outcome(await load(store, not_claimed), DELIVERED),  # never claimed: not in flight
    ]

    assert await store.queue.record(outcomes, now=T0 + 5) == sorted([delivered, deferred, bounced])

    m = await load(store, delivered)
    assert (m.status, m.attempts, m.due_at, m.last_reply, m.error_message) == (
        DELIVERED,
        1,
        T0 - 4,
        "250 2.0.0 OK queued as 7F2",
        None,
    )
    assert (m.lease_owner, m.lease_until, m.updated_at) == (None, None, T0 + 5)
    m = await load(store, deferred)
    assert (m.status, m.attempts, m.due_at, m.last_reply) == (
        DEFERRED,
        1,
        T0 + 60,
        "451 4.7.1 Greylisted",
    )
    assert m.error_message == "The receiving server asked us to try again later (greylisting)."
    m = await load(store, bounced)
    assert (m.status, m.error_message) == (BOUNCED, "The recipient's mailbox does not exist.")
    assert (await load(store, not_claimed)).status is QUEUED

    bounce = (await store.messages.events_for(bounced))[-1]
    assert (bounce.event_type, bounce.recipient, bounce.created_at) == (
        "bounce",
        "Gone.User@example.org",
        T0 + 5,
    )
    assert bounce.data == {"bounce_type": "hard", "bounce_reason": "User unknown"}
    assert await event_types(store, delivered) == ["delivered"]
    assert await event_types(store, deferred) == ["deferred"]
    assert await event_types(store, not_claimed) == []

    # Keyed as acceptance looks it up, so the next send to this address is dropped.
    tenant = claimed[bounced].tenant_id
    assert await store.suppressions.lists_for(tenant, ["gone.user@example.org"]) == {
        "gone.user@example.org": frozenset({"bounces"})
    }
    entry = await store.suppressions.get(tenant, "bounces", "gone.user@example.org")
    assert entry is not None
    assert (entry.reason, entry.status, entry.message_id, entry.created_at) == (
        "550 5.1.1 User unknown",
        "5.1.1",
        bounced,
        T0 + 5,
    )


async def test_record_skips_messages_no_longer_in_flight(store: Store) -> None:
    """A late outcome (already recorded, or requeued after its lease expired) changes nothing."""
    done, requeued = await enqueue(store, [T0 - 2, T0 - 1])
    claimed = {m.id: m for m in await claim(store, "node-a")}
    first = outcome(claimed[done], DELIVERED)
    assert await store.queue.record([first], now=T0 + 1) == [done]
    await store.queue.release_expired(now=T0 + LEASE + 1)

    late = [
        outcome(claimed[done], BOUNCED, event_type="bounce", event_data={}),
        outcome(claimed[requeued], DELIVERED),
    ]
    assert await store.queue.record(late, now=T0 + LEASE + 2) == []
    assert (await load(store, done)).status is DELIVERED
    assert await event_types(store, done) == ["delivered"]
    assert (await load(store, requeued)).status is QUEUED
    assert await event_types(store, requeued) == ["requeued"]


async def test_record_keeps_an_existing_suppression_unchanged(store: Store) -> None:
    (message_id,) = await enqueue(store, [T0 - 1], recipients=["gone@example.org"])
    (message,) = await claim(store, "node-a")
    assert await store.suppressions.add(
        message.tenant_id, "bounces", "gone@example.org", reason="first"
    )
    assert not await store.suppressions.add(message.tenant_id, "bounces", "gone@example.org")
    bounce = outcome(
        message,
        BOUNCED,
        event_type="bounce",
        event_data={"bounce_type": "hard"},
        suppression=SuppressionEntry("bounces", "550 5.1.1 User unknown", "5.1.1"),
    )

    assert await store.queue.record([bounce], now=T0 + 1) == [message_id]
    entry = await store.suppressions.get(message.tenant_id, "bounces", "gone@example.org")
    assert entry is not None and (entry.reason, entry.message_id) == ("first", None)


async def test_record_refuses_an_outcome_that_is_not_final(store: Store) -> None:
    (message_id,) = await enqueue(store, [T0 - 1])
    (message,) = await claim(store, "node-a")
    with pytest.raises(ValueError, match="needs due_at"):
        await store.queue.record([outcome(message, DEFERRED)], now=T0)
    with pytest.raises(ValueError, match="DELIVERED, DEFERRED, BOUNCED or FAILED"):
        await store.queue.record([outcome(message, SENDING)], now=T0)
    assert (await load(store, message_id)).status is PROCESSING
    assert await store.queue.record([], now=T0) == []


# --- depth and next_due ------------------------------------------------------------------


async def test_depth_counts_due_scheduled_and_in_flight(store: Store) -> None:
    assert await store.queue.depth(now=T0) == QueueDepth(0, 0, 0, None)
    assert await store.queue.next_due(now=T0) is None
    ids = await enqueue(store, [T0 - 100, T0 - 40, T0 - 30, T0 - 20, T0 + 10, T0 + 500, T0 - 5])
    await set_columns(store, [ids[6]], status="DELIVERED")
    await claim(store, "node-a", limit=1)  # takes ids[0], the oldest
    await store.queue.advance("node-a", [ids[0]], SENDING, now=T0)

    assert await store.queue.depth(now=T0) == QueueDepth(
        due=3, scheduled=2, in_flight=1, oldest_due_age=40.0
    )
    assert await store.queue.next_due(now=T0) == T0  # something is due already
    await claim(store, "node-a", limit=3)
    assert await store.queue.depth(now=T0) == QueueDepth(0, 2, 4, None)
    assert await store.queue.next_due(now=T0) == T0 + 10


# --- send counters -----------------------------------------------------------------------


async def test_send_counters_add_up_per_scope_and_day(store: Store) -> None:
    day = "2027-01-15"
    assert await store.send_counters.counts(["pool:warm1"], day) == {"pool:warm1": 0}
    await store.send_counters.add({"pool:warm1": 3, "domain:example.com": 1}, day)
    await store.send_counters.add({"pool:warm1": 2, "domain:other.com": 0}, day)
    await store.send_counters.add({"pool:warm1": 7}, "2027-01-16")
    await store.send_counters.add({}, day)

    assert await store.send_counters.counts(
        ["pool:warm1", "domain:example.com", "domain:other.com"], day
    ) == {"pool:warm1": 5, "domain:example.com": 1, "domain:other.com": 0}
    assert await store.send_counters.counts(["pool:warm1"], "2027-01-16") == {"pool:warm1": 7}
    assert await store.send_counters.counts([], day) == {}


async def test_send_counters_from_two_nodes_lose_no_increment(database_url: str) -> None:
    a = await Store.open(database_url)
    b = await Store.open(database_url, migrate_schema=False)
    try:

        async def count(node: Store) -> None:
            for _ in range(20):
                await node.send_counters.add({"pool:warm1": 1, "domain:example.com": 2}, "d1")

        async with trio.open_nursery() as nursery:
            for node in (a, a, b, b):
                nursery.start_soon(count, node)
        assert await b.send_counters.counts(["pool:warm1", "domain:example.com"], "d1") == {
            "pool:warm1": 80,
            "domain:example.com": 160,
        }
    finally:
        a.close()
        b.close()
