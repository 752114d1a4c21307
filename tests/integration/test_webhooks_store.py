"""``store.webhooks`` on both engines: outbox reads, retries, disable with alert, enable."""

from __future__ import annotations

import sqlalchemy as sa

from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.store.schema import events, webhook_outbox
from appliance.store.store import Store


async def _append(store: Store, tenant_id: str, kinds: list[str], now: float) -> list[str]:
    rows = [
        event_row(tenant_id, f"msg_{i}", kind, f"r{i}@example.test", {"n": i}, now + i)
        for i, kind in enumerate(kinds)
    ]
    await store.db.write(lambda c: append_events(c, rows))
    return [r["id"] for r in rows]


async def test_outbox_due_retry_disable_enable(store: Store) -> None:
    tenant = await store.tenants.create("t")
    hooks = store.webhooks
    every = await hooks.create(tenant_id=tenant.id, url="http://127.0.0.1:1/a", now=1000)
    bounces = await hooks.create(
        tenant_id=tenant.id, url="http://127.0.0.1:1/b", event_types=["bounce"], now=1000
    )
    ids = await _append(store, tenant.id, ["processed", "bounce", "delivered"], 2000)

    due = await hooks.due(every.id, 10, now=3000, lease=0)
    assert [i.event.id for i in due] == ids
    assert due[0].event.payload()["recipient_email"] == "r0@example.test"
    assert [i.event.id for i in await hooks.due(bounces.id, 10, now=3000, lease=0)] == [ids[1]]
    assert [i.event.id for i in await hooks.due(every.id, 2, now=3000, lease=0)] == ids[:2]
    assert await hooks.due(every.id, 10, now=1999, lease=0) == []

    await hooks.reschedule([due[0].id, due[1].id], 5000, "receiver answered 500")
    assert [i.event.id for i in await hooks.due(every.id, 10, now=3000, lease=0)] == [ids[2]]
    assert await hooks.next_due(every.id) == 2002
    await hooks.delete_delivered([due[2].id])
    later = await hooks.due(every.id, 10, now=5000, lease=0)
    assert [(i.event.id, i.attempts) for i in later] == [(ids[0], 1), (ids[1], 1)]
    assert await hooks.pending() == {every.id: 2, bounces.id: 1}

    await hooks.set_failing_since(every.id, 2500)
    disabled = await hooks.disable(every.id, reason="down for a day", now=90000)
    assert disabled is not None and not disabled.enabled and disabled.disabled_at == 90000
    alerts = await store.db.read(
        lambda c: c.execute(
            sa.select(events).where(events.c.event_type == "webhook_disabled")
        ).all()
    )
    assert len(alerts) == 1 and alerts[0].message_id is None
    # The alert went to the outbox too (the filter of `every` takes all events).
    assert (await hooks.pending())[every.id] == 3

    enabled = await hooks.enable(tenant.id, every.id, now=95000)
    assert enabled is not None and enabled.enabled
    assert enabled.disabled_at is None and enabled.failing_since is None
    assert len(await hooks.due(every.id, 10, now=95000, lease=0)) == 3

    await hooks.record_attempt(
        every.id,
        attempted_at=1,
        events=2,
        status_code=500,
        latency_ms=3.0,
        error="boom",
        response_snippet="x",
    )
    await hooks.record_attempt(
        every.id,
        attempted_at=2,
        events=2,
        status_code=200,
        latency_ms=3.0,
        error=None,
        response_snippet="ok",
        test=True,
    )
    attempts = await hooks.attempts(every.id)
    assert [(a.status_code, a.test) for a in attempts] == [(200, True), (500, False)]

    assert await hooks.get("tnt_other", every.id) is None
    assert await hooks.delete(tenant.id, every.id)
    assert not await hooks.delete(tenant.id, every.id)
    left = await store.db.read(
        lambda c: c.execute(
            sa.select(sa.func.count()).where(webhook_outbox.c.webhook_id == every.id)
        ).scalar()
    )
    assert left == 0


async def test_two_nodes_never_claim_the_same_outbox_rows(store: Store, database_url: str) -> None:
    """Each node's dispatcher claims rows with a lease: no event is posted by both."""
    import trio

    tenant = await store.tenants.create("t")
    hook = await store.webhooks.create(tenant_id=tenant.id, url="http://127.0.0.1:1/a", now=1000)
    ids = await _append(store, tenant.id, ["processed"] * 200, 2000)
    other = await Store.open(database_url)
    claimed: list[list[str]] = [[], []]
    try:

        async def drain(index: int, node: Store) -> None:
            while items := await node.webhooks.due(hook.id, 7, now=3000):
                claimed[index].extend(i.event.id for i in items)
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, 0, store)
            nursery.start_soon(drain, 1, other)
    finally:
        other.close()
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)  # every row once, none twice
    # A crashed node's claims come due again once the lease has passed.
    assert len(await store.webhooks.due(hook.id, 500, now=3000 + 121)) == 200
