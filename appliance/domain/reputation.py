"""The reputation guard's rules: bounce and complaint rates, and what crossing them means.

Rates are judged per tenant and per sending domain over rolling windows
(24 hours and 7 days), once a subject has sent ``min_volume`` messages in the
window (delivered or bounced, each message counted once):

- hard-bounce rate = messages with a hard bounce / volume;
- complaint rate = messages with a spam report / volume.

A rate at or above its *alert* threshold opens an episode: one
``reputation_alert`` event, not repeated while the rate stays high; the
episode ends (a ``reputation_recovered`` event) once no window is above it.
A rate at or above its *suspend* threshold suspends the tenant's sending,
with a reason naming the rate, its value and the threshold, until an
operator reinstates it. Traffic from before a reinstatement is forgiven:
only what follows it is judged again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    seconds: float


WINDOWS: Final = (Window("24h", 86_400.0), Window("7d", 7 * 86_400.0))
LONGEST: Final = max(w.seconds for w in WINDOWS)


class Metric(StrEnum):
    HARD_BOUNCE = "hard_bounce_rate"
    COMPLAINT = "complaint_rate"

    @property
    def words(self) -> str:
        return "hard-bounce rate" if self is Metric.HARD_BOUNCE else "complaint rate"


class Level(int, Enum):
    OK = 0
    ALERT = 1
    SUSPEND = 2


@dataclass(frozen=True, slots=True)
class Thresholds:
    alert_hard_bounce: float = 0.05
    alert_complaint: float = 0.001
    suspend_hard_bounce: float = 0.10
    suspend_complaint: float = 0.005
    min_volume: int = 100

    def __post_init__(self) -> None:
        for metric in Metric:
            alert, suspend = self.alert(metric), self.suspend(metric)
            if not 0 < alert <= suspend <= 1:
                raise ValueError(
                    f"{metric.value}: need 0 < alert threshold <= suspend threshold <= 1, "
                    f"not alert {alert} and suspend {suspend} (write 5 % as 0.05)"
                )
        if self.min_volume < 1:
            raise ValueError(f"min_volume must be 1 or more, not {self.min_volume}")

    def alert(self, metric: Metric) -> float:
        return self.alert_hard_bounce if metric is Metric.HARD_BOUNCE else self.alert_complaint

    def suspend(self, metric: Metric) -> float:
        return self.suspend_hard_bounce if metric is Metric.HARD_BOUNCE else self.suspend_complaint


@dataclass(frozen=True, slots=True)
class Counts:
    """What one subject sent in one window."""

    volume: int  # messages delivered or bounced
    hard_bounces: int
    complaints: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.volume + other.volume,
            self.hard_bounces + other.hard_bounces,
            self.complaints + other.complaints,
        )

    def rate(self, metric: Metric) -> float:
        if self.volume == 0:
            return 0.0
        n = self.hard_bounces if metric is Metric.HARD_BOUNCE else self.complaints
        return n / self.volume


ZERO: Final = Counts(0, 0, 0)


@dataclass(frozen=True, slots=True)
class Subject:
    """``("tenant", tnt_…)`` or ``("domain", "example.com")``."""

    kind: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Breach:
    subject: Subject
    window: Window
    metric: Metric
    rate: float
    threshold: float
    level: Level
    counts: Counts

    @property
    def episode(self) -> str:
        """What an alert episode is about: one subject and one rate."""
        return f"{self.subject.key}:{self.metric.value}"

    def describe(self) -> str:
        who = "the account" if self.subject.kind == "tenant" else f"domain {self.subject.name}"
        n = (
            self.counts.hard_bounces
            if self.metric is Metric.HARD_BOUNCE
            else self.counts.complaints
        )
        return (
            f"{self.metric.words} of {who} over the last {self.window.name} is "
            f"{self.rate:.2%} ({n} of {self.counts.volume} messages), at or above the "
            f"{'suspension' if self.level is Level.SUSPEND else 'alert'} threshold of "
            f"{self.threshold:.2%}"
        )

    def json(self) -> dict[str, Any]:
        return {
            "subject": self.subject.kind,
            "name": self.subject.name,
            "window": self.window.name,
            "metric": self.metric.value,
            "rate": round(self.rate, 6),
            "threshold": self.threshold,
            "level": self.level.name.lower(),
            "volume": self.counts.volume,
            "hard_bounces": self.counts.hard_bounces,
            "complaints": self.counts.complaints,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guard does for one tenant now."""

    new_alerts: tuple[Breach, ...]  # episodes opening: one reputation_alert event each
    recovered: tuple[str, ...]  # episodes ending: one reputation_recovered event each
    suspend: Breach | None  # the worst breach at the suspend level, if any

    @property
    def suspension_reason(self) -> str | None:
        if self.suspend is None:
            return None
        return (
            f"Sending suspended by the reputation guard: the {self.suspend.describe()}. "
            "Fix the list (remove bad addresses, honour complaints), then ask an operator to "
            "reinstate the account"
        )


def breaches(counts: Mapping[tuple[Subject, str], Counts], thresholds: Thresholds) -> list[Breach]:
    """Every (subject, window, rate) at or above its alert threshold.

    ``counts`` maps (subject, window name) to what it sent then.
    """
    windows = {w.name: w for w in WINDOWS}
    found = []
    for (subject, window_name), c in sorted(
        counts.items(), key=lambda kv: (kv[0][0].key, kv[0][1])
    ):
        if c.volume < thresholds.min_volume:
            continue
        for metric in Metric:
            rate = c.rate(metric)
            if rate >= thresholds.suspend(metric):
                level, threshold = Level.SUSPEND, thresholds.suspend(metric)
            elif rate >= thresholds.alert(metric):
                level, threshold = Level.ALERT, thresholds.alert(metric)
            else:
                continue
            found.append(Breach(subject, windows[window_name], metric, rate, threshold, level, c))
    return found


def judge(
    counts: Mapping[tuple[Subject, str], Counts],
    thresholds: Thresholds,
    *,
    open_episodes: Iterable[str],
) -> Verdict:
    """The verdict for one tenant, given its counts and the alert episodes still open."""
    found = breaches(counts, thresholds)
    open_now = set(open_episodes)
    seen: dict[str, Breach] = {}
    for b in found:
        worst = seen.get(b.episode)
        if worst is None or (b.level, b.rate) > (worst.level, worst.rate):
            seen[b.episode] = b
    new_alerts = tuple(b for ep, b in sorted(seen.items()) if ep not in open_now)
    recovered = tuple(sorted(open_now - set(seen)))
    suspends = [b for b in seen.values() if b.level is Level.SUSPEND]
    worst = max(suspends, key=lambda b: (b.rate / b.threshold, b.episode), default=None)
    return Verdict(new_alerts, recovered, worst)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
