"""The daily roll-up kept with every event, and its rebuild, on both engines."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from appliance.domain.acceptance import AcceptancePlan, NewEvent, NewMessage
from appliance.domain.delivery_outcome import Attempt, DeliveryOutcome, Route, delivered, refused
from appliance.domain.ids import new_id
from appliance.domain.message_status import MessageStatus
from appliance.domain.retry_schedule import RetryPolicy
from appliance.domain.stats_metrics import zero_metrics
from appliance.domain.stats_periods import DateRange
from appliance.protocols.smtp_reply import Reply
from appliance.store.event_log import append_events
from appliance.store.messages import Message, event_row
from appliance.store.schema import messages, stats_daily
from appliance.store.store import Store

DAY1 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC).timestamp()  # a Monday
DAY2 = DAY1 + 86_400
MX = Route(mx_host="mx.example.org", ip=None, tls=True, relay=None)
SPAN = DateRange(dt.date(2026, 3, 1), dt.date(2026, 3, 4))


async def accept(
    store: Store,
    tenant_id: str,
    recipients: Sequence[str],
    *,
    category: str | None,
    dropped: Sequence[str] = (),
    now: float = DAY1,
) -> list[str]:
    """Accept one message per recipient, as /v3/mail/send does; ``dropped`` ones are suppressed."""
    new, first = [], []
    for i, rcpt in enumerate(recipients):
        message_id = new_id("msg", now=now)
        drop = rcpt in dropped
        new.append(
            NewMessage(
                message_id,
                i,
                rcpt,
                "sender@example.com",
                "Hi",
                MessageStatus.FAILED if drop else MessageStatus.QUEUED,
                now,
                "dropped: Bounced Address" if drop else None,
            )
        )
        data: dict[str, Any] = {"reason": "suppressed_bounce"} if drop else {}
        first.append(
            NewEvent(
                new_id("evt", now=now), message_id, "dropped" if drop else "processed", rcpt, data
            )
        )
    plan = AcceptancePlan(new_id("req", now=now), tuple(new), tuple(first))
    await store.messages.accept(
        tenant_id=tenant_id, plan=plan, payload=b"{}", category=category, batch_id=None, now=now
    )
    return [m.id for m in plan.messages]


def attempt(message: Message) -> Attempt:
    return Attempt(message.id, message.tenant_id, message.recipient, message.request_id, 0)


async def deliver(store: Store, replies: dict[str, Reply], *, now: float) -> None:
    """Claim the due messages and record each one's reply, as the delivery engine does."""
    claimed = await store.queue.claim("node", limit=100, lease_seconds=60, now=now)
    claimed = [m for m in claimed if m.id in replies]
    await store.queue.advance("node", [m.id for m in claimed], MessageStatus.SENDING, now=now)
    outcomes: list[DeliveryOutcome] = []
    for m in claimed:
        reply = replies[m.id]
        if reply.code < 300:
            outcomes.append(delivered(attempt(m), reply, MX, now=now))
        else:
            outcomes.append(
                refused(attempt(m), reply, MX, policy=RetryPolicy(), rng=random.Random(1), now=now)
            )
    assert sorted(await store.queue.record(outcomes, now=now)) == sorted(replies)


async def engage(
    store: Store, tenant_id: str, events: Sequence[tuple[str, str]], now: float
) -> None:
    """Store opens / clicks / unsubscribes as tracking will: through ``append_events``."""
    rows = [event_row(tenant_id, mid, kind, "r@example.org", {}, now) for mid, kind in events]
    await store.db.write(lambda conn: append_events(conn, rows))


async def table(store: Store) -> list[dict[str, Any]]:
    def fn(conn: sa.Connection) -> list[dict[str, Any]]:
        query = sa.select(stats_daily).order_by(
            stats_daily.c.tenant_id, stats_daily.c.day, stats_daily.c.category
        )
        return [dict(r._mapping) for r in conn.execute(query)]

    return await store.db.read(fn)


def metrics(**values: int) -> dict[str, int]:
    return {**zero_metrics(), **values}


async def by_day(store: Store, tenant_id: str, category: str | None = None) -> dict[str, Any]:
    rows = await store.stats.daily(
        tenant_id, SPAN, categories=None if category is None else [category]
    )
    return {r.day: r.metrics for r in rows}


async def scenario(store: Store) -> tuple[str, str, list[str]]:
    """Two tenants; tenant A: 4 accepted in "welcome", 1 dropped, 1 uncategorised, then
    delivery over two days, opens and clicks; tenant B: one delivered message."""
    a = (await store.tenants.create("A")).id
    b = (await store.tenants.create("B")).id
    ok, soft, hard, blocked, gone = await accept(
        store,
        a,
        ["ok@x.org", "soft@x.org", "hard@x.org", "blk@x.org", "gone@x.org"],
        category="welcome",
        dropped=["gone@x.org"],
    )
    (plain,) = await accept(store, a, ["plain@y.org"], category=None)
    (other,) = await accept(store, b, ["b@z.org"], category="welcome")
    await deliver(
        store,
        {
            ok: Reply.build(250, "2.0.0", "OK"),
            soft: Reply.build(451, "4.3.0", "try later"),
            hard: Reply.build(550, "5.1.1", "User unknown"),
            blocked: Reply.build(554, "5.7.1", "Message rejected due to policy"),
            plain: Reply.build(250, "2.0.0", "OK"),
            other: Reply.build(250, "2.0.0", "OK"),
        },
        now=DAY1,
    )
    await deliver(store, {soft: Reply.build(250, "2.0.0", "OK")}, now=DAY2)
    await engage(store, a, [(ok, "open"), (ok, "open"), (ok, "click")], DAY2)
    await engage(store, a, [(ok, "open"), (plain, "open"), (ok, "group_unsubscribe")], DAY2)
    return a, b, [ok, soft, hard, blocked, gone, plain]


async def test_roll_up_counts_every_event_as_sendgrid_does(store: Store) -> None:
    a, b, _ = await scenario(store)

    all_mail = await by_day(store, a)
    assert all_mail == {
        "2026-03-02": metrics(
            requests=6,
            processed=5,
            bounce_drops=1,
            delivered=2,
            deferred=1,
            bounces=1,
            blocks=1,
        ),
        "2026-03-03": metrics(
            delivered=1, opens=4, unique_opens=2, clicks=1, unique_clicks=1, unsubscribes=1
        ),
    }
    welcome = await by_day(store, a, "welcome")
    assert welcome["2026-03-02"] == metrics(
        requests=5, processed=4, bounce_drops=1, delivered=1, deferred=1, bounces=1, blocks=1
    )
    assert welcome["2026-03-03"] == metrics(
        delivered=1, opens=3, unique_opens=1, clicks=1, unique_clicks=1, unsubscribes=1
    )
    # tenant B saw only its own message
    assert await by_day(store, b) == {"2026-03-02": metrics(requests=1, processed=1, delivered=1)}
    assert await store.stats.category_sums(a, SPAN) == {
        "welcome": metrics(
            requests=5,
            processed=4,
            bounce_drops=1,
            delivered=2,
            deferred=1,
            bounces=1,
            blocks=1,
            opens=3,
            unique_opens=1,
            clicks=1,
            unique_clicks=1,
            unsubscribes=1,
        )
    }


async def test_rebuild_replays_events_to_the_same_rows(store: Store) -> None:
    a, b, _ = await scenario(store)
    live = await table(store)
    # Damage tenant A's rows; B's must survive A's rebuild untouched.
    await store.db.write(
        lambda conn: conn.execute(
            stats_daily.update().where(stats_daily.c.tenant_id == a).values(delivered=999)
        )
    )

    result = await store.stats.rebuild(a, batch_size=3)  # several batches

    assert await table(store) == live
    assert result.events == 18  # 6 accepted, 5 + 1 delivery outcomes, 6 engagement
    assert result.rows == 4  # two days x ("" and "welcome")
    assert (await store.stats.rebuild(b)).rows == 2


async def test_sandbox_messages_are_never_counted(store: Store) -> None:
    tenant = (await store.tenants.create("S")).id
    (real,) = await accept(store, tenant, ["real@x.org"], category="c")
    before = await table(store)
    (sandboxed,) = await accept(store, tenant, ["sb@x.org"], category="c", now=DAY1 + 1)
    # Accepted as sandbox traffic: mark it and undo what its processed event added.
    await store.db.write(
        lambda conn: conn.execute(
            messages.update().where(messages.c.id == sandboxed).values(sandbox=True)
        )
    )
    await store.stats.rebuild(tenant)
    assert await table(store) == before
    await deliver(
        store,
        {real: Reply.build(250, "2.0.0", "OK"), sandboxed: Reply.build(250, "2.0.0", "OK")},
        now=DAY1 + 2,
    )
    await engage(store, tenant, [(sandboxed, "open"), (sandboxed, "click")], DAY1 + 3)

    assert await by_day(store, tenant) == {
        "2026-03-02": metrics(requests=1, processed=1, delivered=1)
    }
    await store.stats.rebuild(tenant)
    assert await by_day(store, tenant, "c") == {
        "2026-03-02": metrics(requests=1, processed=1, delivered=1)
    }


async def test_events_without_a_known_message_add_nothing(store: Store) -> None:
    tenant = (await store.tenants.create("N")).id
    await engage(store, tenant, [("msg_unknown", "delivered")], DAY1)
    rows = [event_row(tenant, None, "webhook_disabled", None, {}, DAY1)]
    await store.db.write(lambda conn: append_events(conn, rows))
    assert await table(store) == []
