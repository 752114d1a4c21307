"""The live event feed: one follower of the ``events`` table, fanned out to subscribers.

A process runs one :class:`EventFeed`. While anyone is subscribed it reads
the events written since its cursor (by ``seq``) every ``poll_interval``
seconds, in one query for all subscribers, and offers each event to every
subscriber whose tenant and filter take it. Because it reads the store, it
sees events written by every node.

Each subscriber has a bounded trio memory channel. The feed never waits for
one: a subscriber whose channel is full is dropped (its ``dropped`` reason is
set and its channel closed), and the others carry on.

Sequence numbers are handed out when a row is inserted but become visible
when its transaction commits, so on PostgreSQL a lower ``seq`` can appear
after a higher one was read. The feed remembers the numbers it skipped over
and looks for them again for ``gap_grace`` seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial

import sqlalchemy as sa
import trio

from appliance.store.messages import Event
from appliance.store.schema import events
from appliance.store.store import Store

log = logging.getLogger("appliance.event_feed")

MAX_GAP = 200  # skipped numbers remembered per jump (sequences may skip many at once)
TOO_SLOW = "client too slow: it did not read events as fast as they came"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events of its tenant a subscriber wants; empty sets mean all."""

    tenant_id: str
    event_types: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()

    def wants(self, event: Event) -> bool:
        if event.tenant_id != self.tenant_id:
            return False
        if self.event_types and event.event_type not in self.event_types:
            return False
        return not self.message_ids or event.message_id in self.message_ids


@dataclass(eq=False)
class Subscription:
    filter: EventFilter
    _send: trio.MemorySendChannel[Event]
    receive: trio.MemoryReceiveChannel[Event]
    dropped: trio.Event = field(default_factory=trio.Event)
    reason: str | None = None

    def drop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.dropped.set()
            self._send.close()


@dataclass(frozen=True, slots=True)
class FeedStatistics:
    subscribers: int
    delivered: int
    dropped: int
    cursor: int | None


class EventFeed:
    def __init__(
        self,
        store: Store,
        *,
        poll_interval: float = 0.25,
        buffer: int = 1000,
        batch: int = 1000,
        gap_grace: float = 5.0,
    ) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self._buffer = buffer
        self._batch = batch
        self._gap_grace = gap_grace
        self._subscribers: set[Subscription] = set()
        self._cursor: int | None = None
        self._gaps: dict[int, float] = {}  # seq skipped over -> when to stop looking for it
        self._wake = trio.Event()
        self._delivered = 0
        self._dropped = 0
        self.running = False

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(len(self._subscribers), self._delivered, self._dropped, self._cursor)

    async def subscribe(self, event_filter: EventFilter) -> Subscription:
        """Register a subscriber; it gets every event committed from now on."""
        if self._cursor is None:
            self._cursor = await self._store.db.read(_max_seq)
            self._gaps.clear()
        send, receive = trio.open_memory_channel[Event](self._buffer)
        sub = Subscription(event_filter, send, receive)
        self._subscribers.add(sub)
        self._wake.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.drop("unsubscribed")
        if not self._subscribers:
            self._cursor = None  # idle: the next subscriber starts from the head again

    async def run(
        self,
        *,
        stop: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the table until ``stop`` is set (the appliance's shutdown) or cancelled."""
        self.running = True
        try:
            async with trio.open_nursery() as nursery:
                if stop is not None:
                    nursery.start_soon(_cancel_when, stop, nursery.cancel_scope)
                task_status.started()
                await self._follow()
        finally:
            self.running = False
            for sub in list(self._subscribers):
                self.unsubscribe(sub)

    async def _follow(self) -> None:
        while True:
            if not self._subscribers:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            try:
                await self.poll_once()
            except Exception:  # the store may be briefly away; keep following
                log.exception("event feed poll failed; retrying")
            await trio.sleep(self._poll_interval)

    async def poll_once(self) -> int:
        """Read new events and offer them to subscribers; returns how many were read."""
        if self._cursor is None:
            return 0
        cursor: int = self._cursor
        start = cursor
        now = trio.current_time()
        self._gaps = {seq: until for seq, until in self._gaps.items() if until > now}
        gaps = sorted(self._gaps)
        rows = await self._store.db.read(partial(_read, cursor=start, gaps=gaps, limit=self._batch))
        if self._cursor is None:  # everyone left while we read
            return 0
        for event in rows:
            self._gaps.pop(event.seq, None)
            if event.seq > cursor:
                for missing in range(max(cursor + 1, event.seq - MAX_GAP), event.seq):
                    self._gaps.setdefault(missing, now + self._gap_grace)
                cursor = event.seq
            self._offer(event)
        self._cursor = cursor
        return len(rows)

    def _offer(self, event: Event) -> None:
        for sub in list(self._subscribers):
            if not sub.filter.wants(event):
                continue
            try:
                sub._send.send_nowait(event)
                self._delivered += 1
            except trio.WouldBlock:
                self._dropped += 1
                self._subscribers.discard(sub)
                sub.drop(TOO_SLOW)
                log.warning(
                    "dropped a slow event stream subscriber",
                    extra={"tenant_id": sub.filter.tenant_id, "buffer": self._buffer},
                )
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(sub)


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _max_seq(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())


def _read(conn: sa.Connection, *, cursor: int, gaps: Collection[int], limit: int) -> list[Event]:
    after = events.c.seq > cursor
    where = sa.or_(after, events.c.seq.in_(list(gaps))) if gaps else after
    rows = conn.execute(sa.select(events).where(where).order_by(events.c.seq).limit(limit)).all()
    return [
        Event(
            r.seq,
            r.id,
            r.tenant_id,
            r.message_id,
            r.event_type,
            r.recipient,
            r.created_at,
            json.loads(r.data),
        )
        for r in rows
    ]


__all__ = [
    "TOO_SLOW",
    "EventFeed",
    "EventFilter",
    "FeedStatistics",
    "Subscription",
]
