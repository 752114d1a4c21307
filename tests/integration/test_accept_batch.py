"""Group commit of acceptance writes on both engines: concurrent requests share one
transaction, and a batch that fails fails each of its requests with nothing written."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

import pytest
import sqlalchemy as sa
import trio
import trio.testing

from appliance.domain.acceptance import GROUP_UNSUBSCRIBES, AcceptancePlan, NewEvent, NewMessage
from appliance.domain.ids import new_id
from appliance.domain.message_status import MessageStatus
from appliance.services.accept_batch import AcceptBatcher
from appliance.store.messages import AcceptWrite, Messages, PlannedAccept
from appliance.store.schema import messages, send_requests
from appliance.store.store import Store

T0 = 1_800_000_000.0


class GatedMessages(Messages):
    """The real store, with the first transaction held until ``gate`` is set."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.db)
        self.gate = trio.Event()
        self.batches: list[list[str]] = []

    async def accept_many(
        self, writes: Sequence[AcceptWrite | PlannedAccept]
    ) -> list[AcceptancePlan]:
        self.batches.append([w.plan.request_id for w in writes if isinstance(w, AcceptWrite)])
        if len(self.batches) == 1:
            await self.gate.wait()
        return await super().accept_many(writes)


def _write(tenant_id: str, request_id: str | None = None) -> AcceptWrite:
    message = NewMessage(
        id=new_id("msg"),
        personalization=0,
        recipient=f"{secrets.token_hex(6)}@example.org",
        from_email="sender@example.com",
        subject="Hello",
        status=MessageStatus.QUEUED,
        due_at=T0,
        error_message=None,
    )
    event = NewEvent(new_id("evt"), message.id, "processed", message.recipient, {})
    plan = AcceptancePlan(request_id or new_id("req"), (message,), (event,))
    return AcceptWrite(tenant_id, plan, b"{}", None, None, T0)


async def _stored(store: Store, writes: Sequence[AcceptWrite]) -> tuple[int, int]:
    ids = [w.plan.request_id for w in writes]

    def fn(c: sa.Connection) -> tuple[int, int]:
        count = sa.select(sa.func.count())
        requests = c.execute(
            count.select_from(send_requests).where(send_requests.c.id.in_(ids))
        ).scalar_one()
        rows = c.execute(count.select_from(messages).where(messages.c.request_id.in_(ids)))
        return int(requests), int(rows.scalar_one())

    return await store.db.read(fn)


async def test_writes_arriving_during_a_write_share_the_next_transaction(store: Store) -> None:
    tenant = await store.tenants.create("Batch")
    gated = GatedMessages(store)
    batcher = AcceptBatcher(gated)
    first, rest = _write(tenant.id), [_write(tenant.id) for _ in range(10)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.write, first)
        await trio.testing.wait_all_tasks_blocked()
        for w in rest:
            nursery.start_soon(batcher.write, w)
        await trio.testing.wait_all_tasks_blocked()
        gated.gate.set()
    # (trio runs the started tasks in any order: the second batch is compared as a set)
    assert gated.batches[0] == [first.plan.request_id]
    assert len(gated.batches) == 2
    assert set(gated.batches[1]) == {w.plan.request_id for w in rest}
    assert await _stored(store, [first, *rest]) == (11, 11)
    # An idle batcher writes at once, alone.
    alone = _write(tenant.id)
    await batcher.write(alone)
    assert gated.batches[-1] == [alone.plan.request_id]


async def test_a_failed_batch_fails_each_request_and_writes_none(store: Store) -> None:
    tenant = await store.tenants.create("Batch")
    gated = GatedMessages(store)
    batcher = AcceptBatcher(gated)
    first = _write(tenant.id)
    # The second batch holds a request whose id is taken: its transaction fails.
    batch = [_write(tenant.id), _write(tenant.id, first.plan.request_id), _write(tenant.id)]
    errors: list[BaseException] = []

    async def write(w: AcceptWrite) -> None:
        try:
            await batcher.write(w)
        except sa.exc.IntegrityError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.write, first)
        await trio.testing.wait_all_tasks_blocked()
        for w in batch:
            nursery.start_soon(write, w)
        await trio.testing.wait_all_tasks_blocked()
        gated.gate.set()
    assert len(gated.batches) == 2
    assert len(errors) == 3 and all(e is errors[0] for e in errors)
    assert await _stored(store, [first]) == (1, 1)
    assert await _stored(store, [batch[0], batch[2]]) == (0, 0)
    # The batcher carries on: the next request is written.
    after = _write(tenant.id)
    await batcher.write(after)
    assert await _stored(store, [after]) == (1, 1)


@pytest.mark.parametrize("limit", ["requests", "messages"])
async def test_a_full_batch_closes_and_the_next_one_opens(store: Store, limit: str) -> None:
    tenant = await store.tenants.create("Batch")
    gated = GatedMessages(store)
    caps = {"max_requests": 3} if limit == "requests" else {"max_messages": 3}
    batcher = AcceptBatcher(gated, **caps)
    writes = [_write(tenant.id) for _ in range(8)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.write, writes[0])
        await trio.testing.wait_all_tasks_blocked()
        for w in writes[1:]:
            nursery.start_soon(batcher.write, w)
            await trio.testing.wait_all_tasks_blocked()
        gated.gate.set()
    assert [len(b) for b in gated.batches] == [1, 3, 3, 1]
    assert await _stored(store, writes) == (8, 8)


async def test_a_planned_request_is_planned_from_the_lists_read_in_its_transaction(
    store: Store,
) -> None:
    tenant = await store.tenants.create("Batch")
    await store.suppressions.add(tenant.id, "bounces", "gone@example.org")
    group = await store.asm_groups.create(tenant.id, name="News", description="d", is_default=False)
    await store.asm_groups.add_suppressions(tenant.id, group.id, ["left@example.org"])
    seen: list[Mapping[str, frozenset[str]]] = []
    planned = _write(tenant.id)

    def plan(lists: Mapping[str, frozenset[str]]) -> AcceptancePlan:
        seen.append(lists)
        return planned.plan

    keys = frozenset({"gone@example.org", "left@example.org", "here@example.org"})
    write = PlannedAccept(tenant.id, keys, group.id, plan, b"{}", None, None, T0)
    assert await AcceptBatcher(store.messages).write(write) is planned.plan
    assert seen == [
        {"gone@example.org": frozenset({"bounces"}), "left@example.org": {GROUP_UNSUBSCRIBES}}
    ]
    assert await _stored(store, [planned]) == (1, 1)


async def test_requests_of_one_batch_see_only_their_tenants_lists_and_their_keys(
    store: Store,
) -> None:
    a, b = await store.tenants.create("A"), await store.tenants.create("B")
    await store.suppressions.add(a.id, "bounces", "x@example.org")
    await store.suppressions.add(a.id, "unsubscribes", "y@example.org")
    gated = GatedMessages(store)
    batcher = AcceptBatcher(gated)
    seen: dict[str, Mapping[str, frozenset[str]]] = {}

    def planned(name: str, tenant_id: str, keys: set[str]) -> PlannedAccept:
        write = _write(tenant_id)

        def plan(lists: Mapping[str, frozenset[str]]) -> AcceptancePlan:
            seen[name] = lists
            return write.plan

        return PlannedAccept(tenant_id, frozenset(keys), None, plan, b"{}", None, None, T0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.write, _write(a.id))
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(batcher.write, planned("a-x", a.id, {"x@example.org"}))
        nursery.start_soon(batcher.write, planned("a-y", a.id, {"y@example.org", "z@example.org"}))
        nursery.start_soon(batcher.write, planned("b-x", b.id, {"x@example.org"}))
        await trio.testing.wait_all_tasks_blocked()
        gated.gate.set()
    assert len(gated.batches) == 2  # the three planned requests shared one transaction
    assert seen == {
        "a-x": {"x@example.org": frozenset({"bounces"})},
        "a-y": {"y@example.org": frozenset({"unsubscribes"})},
        "b-x": {},
    }
