"""``store.captures`` on both engines: the capture mailbox, tenant by tenant."""

from __future__ import annotations

from appliance.store.captures import CaptureFilter
from appliance.store.store import Store


def _raw(n: int) -> bytes:
    return f"Subject: message {n}\r\nTo: r{n}@example.test\r\n\r\nbody {n}\r\n".encode()


async def test_add_list_get_raw_count_delete(store: Store) -> None:
    tenant = await store.tenants.create("t")
    captures = store.captures
    added = []
    for n in range(5):
        added.append(
            await captures.add(
                tenant_id=tenant.id,
                message_id=f"msg_{n}",
                mail_from=f"bounces+msg_{n}@bounces.sender.test",
                rcpt_to=f"R{n % 2}@Example.test",
                subject=f"message {n}",
                raw=_raw(n),
                now=1000.0 + n,
            )
        )
    assert [c.id for c in added] == sorted(c.id for c in added), "ids grow with each capture"
    assert added[0].size == len(_raw(0))

    listed = await captures.list(tenant.id, limit=10)
    assert [c.message_id for c in listed] == [f"msg_{n}" for n in (4, 3, 2, 1, 0)]
    assert listed[0] == added[4]
    assert await captures.count(tenant.id) == 5

    first = await captures.list(tenant.id, limit=2)
    second = await captures.list(tenant.id, limit=2, before=(first[-1].captured_at, first[-1].id))
    third = await captures.list(tenant.id, limit=2, before=(second[-1].captured_at, second[-1].id))
    assert [c.message_id for c in first + second + third] == [f"msg_{n}" for n in (4, 3, 2, 1, 0)]

    to_r1 = CaptureFilter(recipient="r1@example.TEST")
    assert [c.message_id for c in await captures.list(tenant.id, to_r1, limit=10)] == [
        "msg_3",
        "msg_1",
    ]
    assert await captures.count(tenant.id, to_r1) == 2
    by_id = CaptureFilter(message_id="msg_2")
    assert [c.id for c in await captures.list(tenant.id, by_id, limit=10)] == [added[2].id]

    assert await captures.get(tenant.id, added[1].id) == added[1]
    assert await captures.raw(tenant.id, added[1].id) == _raw(1)
    assert await captures.get(tenant.id, 10**9) is None

    assert await captures.delete(tenant.id, added[1].id) is True
    assert await captures.delete(tenant.id, added[1].id) is False
    assert await captures.get(tenant.id, added[1].id) is None
    assert await captures.count(tenant.id) == 4
    assert await captures.delete_all(tenant.id) == 4
    assert await captures.list(tenant.id, limit=10) == []


async def test_captures_of_one_tenant_are_invisible_to_another(store: Store) -> None:
    mine = await store.tenants.create("mine")
    theirs = await store.tenants.create("theirs")
    capture = await store.captures.add(
        tenant_id=mine.id,
        message_id="msg_a",
        mail_from="bounces+msg_a@bounces.a.test",
        rcpt_to="x@example.test",
        subject="private",
        raw=_raw(1),
        now=1000.0,
    )
    await store.captures.add(
        tenant_id=theirs.id,
        message_id="msg_b",
        mail_from="bounces+msg_b@bounces.b.test",
        rcpt_to="y@example.test",
        subject="theirs",
        raw=_raw(2),
        now=1001.0,
    )
    other = theirs.id
    assert [c.message_id for c in await store.captures.list(other, limit=10)] == ["msg_b"]
    assert await store.captures.get(other, capture.id) is None
    assert await store.captures.raw(other, capture.id) is None
    assert await store.captures.count(other, CaptureFilter(message_id="msg_a")) == 0
    assert await store.captures.delete(other, capture.id) is False
    assert await store.captures.delete_all(other) == 1
    assert await store.captures.get(mine.id, capture.id) == capture, "theirs emptied, mine kept"


async def test_a_large_binary_message_is_kept_byte_for_byte(store: Store) -> None:
    tenant = await store.tenants.create("t")
    raw = b"Subject: big\r\n\r\n" + bytes(range(256)) * 20_000  # 5 MB, every byte value
    capture = await store.captures.add(
        tenant_id=tenant.id,
        message_id="msg_big",
        mail_from="bounces+msg_big@bounces.a.test",
        rcpt_to="x@example.test",
        subject="big",
        raw=raw,
        now=1000.0,
    )
    assert capture.size == len(raw)
    assert await store.captures.raw(tenant.id, capture.id) == raw
