"""When to try a deferred message again: the retry schedule, as one table.

With the defaults a message gets the first attempt and five retries, after
about 60 s, 5 min, 15 min, 1 h and 4 h (``base_delay`` times each
multiplier; the last multiplier repeats when ``max_retries`` asks for more
retries than the table has). Each delay is spread by ``jitter`` so that
messages deferred together do not all come back in the same second.

Greylisting (a receiver refusing an unknown sender once, to see whether it
retries like a real MTA) gets a short first retry, ``greylist_delay``,
instead of the schedule's first step: the greylister usually lets the retry
through after a minute or so.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DEFAULT_MULTIPLIERS: tuple[float, ...] = (1, 5, 15, 60, 240)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry schedule; every field is a setting (``SMTP_RETRY_BASE_DELAY`` and
    ``SMTP_MAX_RETRIES`` set the first two)."""

    base_delay: float = 60.0  # seconds before the first retry (SMTP_RETRY_BASE_DELAY)
    max_retries: int = 5  # retries after the first attempt (SMTP_MAX_RETRIES)
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS  # retry n waits base * multipliers[n-1]
    jitter: float = 0.1  # each delay is spread uniformly by +- this fraction
    greylist_delay: float = 90.0  # seconds before the retry after a greylisting first attempt

    def __post_init__(self) -> None:
        if not _positive(self.base_delay):
            raise ValueError(
                f"base_delay must be a positive number of seconds, not {self.base_delay!r} "
                "(set SMTP_RETRY_BASE_DELAY to e.g. 60)"
            )
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be a whole number, not {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(
                f"max_retries must be 0 or more, not {self.max_retries} "
                "(0 means a deferred message bounces after its first attempt)"
            )
        if not self.multipliers:
            raise ValueError("multipliers must name at least one factor, e.g. (1, 5, 15, 60, 240)")
        bad = [m for m in self.multipliers if not _positive(m)]
        if bad:
            raise ValueError(f"multipliers must all be positive numbers; got {bad!r}")
        if not (math.isfinite(self.jitter) and 0 <= self.jitter < 1):
            raise ValueError(
                f"jitter must be a fraction from 0 up to (not including) 1, not {self.jitter!r} "
                "(0.1 spreads each delay by +-10 %)"
            )
        if not _positive(self.greylist_delay):
            raise ValueError(
                f"greylist_delay must be a positive number of seconds, not {self.greylist_delay!r}"
            )

    @property
    def max_attempts(self) -> int:
        """Delivery attempts a message gets in all, the first one included."""
        return self.max_retries + 1

    def nominal_delay(self, attempts_made: int, *, greylisting: bool = False) -> float | None:
        """The delay before the next attempt without jitter; None when retries are exhausted.

        ``attempts_made`` counts the attempt that just failed (1 after the first).
        """
        if isinstance(attempts_made, bool) or not isinstance(attempts_made, int):
            raise ValueError(f"attempts_made must be a whole number, not {attempts_made!r}")
        if attempts_made < 1:
            raise ValueError(
                f"attempts_made counts the attempt that just failed, so it is 1 or more, "
                f"not {attempts_made}"
            )
        if attempts_made > self.max_retries:
            return None
        if greylisting and attempts_made == 1:
            return self.greylist_delay
        step = min(attempts_made, len(self.multipliers)) - 1
        return self.base_delay * self.multipliers[step]

    def next_delay(
        self, attempts_made: int, *, greylisting: bool, rng: random.Random
    ) -> float | None:
        """Seconds until the next attempt, jittered; None when retries are exhausted.

        ``greylisting`` says the failed attempt's reply was greylisting; it
        shortens only the first retry (a greylister that still refuses the
        second attempt is treated like any other deferral).
        """
        nominal = self.nominal_delay(attempts_made, greylisting=greylisting)
        if nominal is None:
            return None
        if self.jitter == 0:
            return nominal
        return nominal * (1 + rng.uniform(-self.jitter, self.jitter))


def _positive(value: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
