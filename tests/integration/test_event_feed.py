"""The event feed against a real store (both engines): late commits, slow subscribers."""

from __future__ import annotations

from typing import Any

import trio

from appliance.services.event_feed import TOO_SLOW, EventFeed, EventFilter
from appliance.store.event_log import append_events
from appliance.store.messages import Event, event_row
from appliance.store.store import Store

TENANT = "tnt_feed"


async def _append(store: Store, *rows: dict[str, Any]) -> None:
    await store.db.write(lambda c: append_events(c, list(rows)))


def _row(message_id: str, seq: int | None = None) -> dict[str, Any]:
    row = event_row(TENANT, message_id, "processed", "a@example.org", {}, 1.0)
    if seq is not None:
        row["seq"] = seq  # as a transaction that took its number earlier would write it
    return row


def _drain(receive: trio.MemoryReceiveChannel[Event]) -> list[str | None]:
    got = []
    while True:
        try:
            got.append(receive.receive_nowait().message_id)
        except (trio.WouldBlock, trio.EndOfChannel):
            return got


async def test_an_event_committed_late_with_a_lower_seq_is_still_delivered(store: Store) -> None:
    await _append(store, _row("msg_before"))
    feed = EventFeed(store)
    sub = await feed.subscribe(EventFilter(TENANT))
    head = feed.statistics().cursor
    assert head is not None
    await _append(store, _row("msg_second", seq=head + 2))
    await feed.poll_once()
    await _append(store, _row("msg_first_but_late", seq=head + 1))
    await feed.poll_once()
    assert _drain(sub.receive) == ["msg_second", "msg_first_but_late"]
    await feed.poll_once()
    assert _drain(sub.receive) == []  # nothing twice


async def test_a_full_subscriber_is_dropped_and_the_others_keep_receiving(store: Store) -> None:
    feed = EventFeed(store, buffer=3)
    idle = await feed.subscribe(EventFilter(TENANT))
    reader = await feed.subscribe(EventFilter(TENANT))
    got: list[str | None] = []
    for batch in (["msg_1", "msg_2"], ["msg_3", "msg_4"]):
        await _append(store, *(_row(m) for m in batch))
        await feed.poll_once()  # never waits for a subscriber
        got += _drain(reader.receive)
    assert got == ["msg_1", "msg_2", "msg_3", "msg_4"]
    assert idle.reason == TOO_SLOW and idle.dropped.is_set()
    assert reader.reason is None
    stats = feed.statistics()
    assert (stats.subscribers, stats.dropped) == (1, 1)
    # What the dropped one had buffered is still readable, then its channel ends.
    assert _drain(idle.receive) == ["msg_1", "msg_2", "msg_3"]


async def test_after_everyone_leaves_the_next_subscriber_starts_at_the_head(store: Store) -> None:
    feed = EventFeed(store)
    first = await feed.subscribe(EventFilter(TENANT))
    feed.unsubscribe(first)
    await _append(store, _row("msg_while_nobody_listened"))
    second = await feed.subscribe(EventFilter(TENANT))
    await _append(store, _row("msg_new"))
    await feed.poll_once()
    assert _drain(second.receive) == ["msg_new"]
