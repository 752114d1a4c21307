"""One delivery destination: its waiting jobs, connections, rate and back-off.

A destination is where a message's SMTP connection goes: the MX hosts of a
recipient domain, or a smart-host relay, from one IP pool's addresses.
Messages for one destination share connections (several per connection,
RSET between them) and its limits: at most ``max_connections`` at once, at
most ``rate`` messages per second, and when the destination asks us to slow
down (421, 4.7.x rate replies) it alone is held back while others go on.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import trio

from appliance.domain.delivery_outcome import Attempt
from appliance.domain.destination_backoff import DestinationBackoff
from appliance.services.composer import ComposedMessage
from appliance.store.messages import Message


@dataclass(frozen=True, slots=True)
class DestinationKey:
    kind: str  # "mx" (recipient domain) | "relay" (relay id) | "capture" (the mailbox)
    name: str
    pool: str | None  # IP pool name, None for the default addresses

    def label(self) -> str:
        where = f"{self.kind}:{self.name}"
        return f"{where}@{self.pool}" if self.pool else where


@dataclass(slots=True)
class Job:
    """A claimed, composed message waiting for a connection to its destination."""

    message: Message
    composed: ComposedMessage
    attempt: Attempt
    key: DestinationKey
    sender_domain: str


class TokenBucket:
    """At most ``rate`` per second on average, bursts up to ``burst``; 0 = unlimited."""

    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._stamp: float | None = None

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            now = trio.current_time()
            if self._stamp is not None:
                elapsed = now - self._stamp
                self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await trio.sleep((1 - self._tokens) / self.rate)


@dataclass(slots=True)
class Destination:
    key: DestinationKey
    max_connections: int
    rate: TokenBucket
    sources: Sequence[str | None] = (None,)
    pending: deque[Job] = field(default_factory=deque)
    workers: int = 0
    idle_workers: int = 0
    connections: int = 0
    backoff: DestinationBackoff = field(default_factory=DestinationBackoff)
    last_error: str | None = None
    delivered: int = 0
    failed: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)
    _source_cycle: Iterator[str | None] | None = None

    def add(self, jobs: Sequence[Job]) -> None:
        self.pending.extend(jobs)
        self.notify()

    def take(self, limit: int) -> list[Job]:
        jobs: list[Job] = []
        while self.pending and len(jobs) < limit:
            jobs.append(self.pending.popleft())
        return jobs

    def take_all(self) -> list[Job]:
        return self.take(len(self.pending))

    def needs_worker(self) -> bool:
        """More work than idle workers can pick up, and room for another connection."""
        return len(self.pending) > self.idle_workers and self.workers < self.max_connections

    def next_source(self) -> str | None:
        """Source addresses in turn, one per new connection."""
        if self._source_cycle is None:
            self._source_cycle = itertools.cycle(self.sources or (None,))
        return next(self._source_cycle)

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "pending": len(self.pending),
            "connections": self.connections,
            "workers": self.workers,
            "held_until": self.backoff.held_until if self.backoff.is_held(now) else None,
            "delivered": self.delivered,
            "failed": self.failed,
            "last_error": self.last_error,
        }


def is_idle(destination: Destination) -> bool:
    return not destination.pending and destination.workers == 0


DestinationFactory = Callable[[DestinationKey], Destination]
