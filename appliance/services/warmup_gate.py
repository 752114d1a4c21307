"""Warm-up caps at delivery time: a new IP pool or sending domain sends a rising daily amount.

Operators turn warm-up on per pool or per domain (its start day is stored);
``domain.warmup.WarmupSchedule`` gives the day's cap. Sent messages are
counted per UTC day in ``send_counters`` (shared by all nodes). A node
keeps its own increments in memory, writes them with each outcome batch
and re-reads the shared counts every ``REFRESH_SECONDS``, so several nodes
together overshoot a cap by at most what they send in that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.domain.warmup import WarmupSchedule, next_day_start, utc_day, warmup_scope
from appliance.store.store import Store

REFRESH_SECONDS = 30.0
SETTINGS_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Hold:
    until: float
    reason: str


class WarmupGate:
    def __init__(
        self,
        store: Store,
        *,
        schedule: WarmupSchedule | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._schedule = schedule or WarmupSchedule()
        self._wall = wall
        self._started: dict[str, tuple[float, float | None]] = {}  # scope -> (read at, start)
        self._stored: dict[tuple[str, str], tuple[float, int]] = {}  # (scope, day) -> (read at, n)
        self._pending: dict[tuple[str, str], int] = {}

    async def _warmup_start(self, scope: str) -> float | None:
        now = self._wall()
        cached = self._started.get(scope)
        if cached is not None and now - cached[0] < SETTINGS_SECONDS:
            return cached[1]
        kind, _, name = scope.partition(":")
        started: float | None = None
        if kind == "domain":
            domain = await self._store.domains.get_by_name(name)
            started = domain.warmup_started_at if domain is not None else None
        else:
            pool = await self._store.ip_pools.get_by_name(name)
            started = pool.warmup_started_at if pool is not None else None
        self._started[scope] = (now, started)
        return started

    async def _sent_today(self, scope: str, day: str) -> int:
        now = self._wall()
        cached = self._stored.get((scope, day))
        if cached is None or now - cached[0] > REFRESH_SECONDS:
            await self.flush()
            counts = await self._store.send_counters.counts([scope], day)
            cached = (now, counts.get(scope, 0))
            self._stored[(scope, day)] = cached
        return cached[1] + self._pending.get((scope, day), 0)

    @staticmethod
    def _scopes(domain: str, pool: str | None) -> list[str]:
        return [warmup_scope("domain", domain), *([warmup_scope("pool", pool)] if pool else [])]

    async def hold(self, domain: str, pool: str | None, *, now: float) -> Hold | None:
        """None when a message from ``domain`` through ``pool`` may go now, else until when.

        A message let through is counted at once (it takes one of the day's
        slots), so a batch claimed together cannot overshoot the cap.
        """
        day = utc_day(now)
        warming: list[str] = []
        for scope in self._scopes(domain, pool):
            started = await self._warmup_start(scope)
            if started is None:
                continue
            cap = self._schedule.cap(started, now)
            if cap is None:
                continue
            if await self._sent_today(scope, day) >= cap:
                until = next_day_start(now)
                what = scope.replace(":", " ", 1)
                return Hold(
                    until,
                    f"{what} is warming up: today's cap of {cap} messages is reached; "
                    f"sending resumes at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(until))} UTC",
                )
            warming.append(scope)
        for scope in warming:
            self._pending[(scope, day)] = self._pending.get((scope, day), 0) + 1
        return None

    async def flush(self) -> None:
        """Write this node's increments to the shared counters."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        by_day: dict[str, dict[str, int]] = {}
        for (scope, day), n in pending.items():
            by_day.setdefault(day, {})[scope] = n
            read_at, stored = self._stored.get((scope, day), (self._wall(), 0))
            self._stored[(scope, day)] = (read_at, stored + n)
        try:
            for day, increments in by_day.items():
                await self._store.send_counters.add(increments, day)
        except BaseException:
            for key, n in pending.items():  # keep them for the next flush
                self._pending[key] = self._pending.get(key, 0) + n
                read_at, stored = self._stored[key]
                self._stored[key] = (read_at, stored - n)
            raise
