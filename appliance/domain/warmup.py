"""Warm-up: daily sending caps for a new domain or source address.

Receivers distrust a sender with no history that suddenly sends a lot. A new
domain or IP address therefore starts with a small daily cap that rises over
14 days; from day 15 there is no cap. Days are UTC calendar days counted from
the day warm-up started (that day is day 1), so every node agrees on "today"
and the cap changes at UTC midnight, never in the middle of a day.

Times are Unix seconds. Unix time has no leap seconds, so a UTC day is
exactly 86 400 of them and day arithmetic is integer division.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Literal

SECONDS_PER_DAY: Final = 86_400

DEFAULT_DAILY_CAPS: Final[tuple[int, ...]] = (
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    40_000,
    70_000,
    100_000,
    150_000,
    250_000,
)


def _epoch_day(t: float) -> int:
    """Whole UTC days since 1970-01-01 (negative before it)."""
    if not math.isfinite(t):
        raise ValueError(f"a time must be a finite number of Unix seconds, not {t!r}")
    return math.floor(t / SECONDS_PER_DAY)


def utc_day(now: float) -> str:
    """The UTC calendar day of ``now`` as ``YYYY-MM-DD`` (the daily counters' key)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=_epoch_day(now))).isoformat()


def next_day_start(now: float) -> float:
    """The next UTC midnight after ``now`` (when today's cap gives way to tomorrow's)."""
    return float((_epoch_day(now) + 1) * SECONDS_PER_DAY)


@dataclass(frozen=True, slots=True)
class WarmupSchedule:
    """Daily caps by warm-up day: ``daily_caps[0]`` on day 1, no cap after the last."""

    daily_caps: tuple[int, ...] = DEFAULT_DAILY_CAPS

    def __post_init__(self) -> None:
        if not self.daily_caps:
            raise ValueError("daily_caps must list at least one day's cap, e.g. (50, 100, 200)")
        for day, cap in enumerate(self.daily_caps, start=1):
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ValueError(
                    f"daily_caps: day {day}'s cap must be a whole number of 1 or more, not {cap!r}"
                )
        for day, (before, cap) in enumerate(pairwise(self.daily_caps), start=2):
            if cap < before:
                raise ValueError(
                    f"daily_caps must not fall from one day to the next: day {day} allows {cap}, "
                    f"day {day - 1} allowed {before}"
                )

    @property
    def days(self) -> int:
        """How many days warm-up lasts (caps apply on days 1 to ``days``)."""
        return len(self.daily_caps)

    def day(self, started_at: float, now: float) -> int:
        """The warm-up day of ``now``: 1 on the UTC day warm-up started.

        A ``now`` before the start (clocks of two nodes disagreeing) counts as day 1.
        """
        return max(1, _epoch_day(now) - _epoch_day(started_at) + 1)

    def cap(self, started_at: float, now: float) -> int | None:
        """Today's cap on messages, or None once warm-up is over."""
        day = self.day(started_at, now)
        return self.daily_caps[day - 1] if day <= self.days else None


def over_cap(
    schedule: WarmupSchedule,
    started_at: float | None,
    sent_today: int,
    now: float,
    *,
    adding: int = 1,
) -> bool:
    """Whether ``adding`` more messages would go over today's cap.

    ``sent_today`` counts messages already sent this UTC day; ``started_at`` None
    means the domain or address is not warming up (no cap).
    """
    if started_at is None:
        return False
    cap = schedule.cap(started_at, now)
    return cap is not None and sent_today + adding > cap


WarmupKind = Literal["domain", "pool"]


def warmup_scope(kind: WarmupKind, name: str) -> str:
    """The send counter a domain's or IP pool's messages are counted in: ``pool:<name>``."""
    return f"{kind}:{name}"


@dataclass(frozen=True, slots=True)
class WarmupState:
    """Where a domain or IP pool is in its warm-up today, for people to read."""

    day: int
    """Warm-up day of today (1 on the day it started)."""
    days: int
    """How many days caps apply (14 by default)."""
    cap: int | None
    """Today's cap on messages; None once warm-up is over."""
    sent_today: int

    @property
    def finished(self) -> bool:
        return self.cap is None

    @property
    def remaining(self) -> int | None:
        """Messages that may still go today (None: no cap)."""
        return None if self.cap is None else max(0, self.cap - self.sent_today)


def warmup_state(
    schedule: WarmupSchedule, started_at: float, sent_today: int, now: float
) -> WarmupState:
    """Today's day, cap and count of a warm-up that started at ``started_at``."""
    return WarmupState(
        day=schedule.day(started_at, now),
        days=schedule.days,
        cap=schedule.cap(started_at, now),
        sent_today=sent_today,
    )
