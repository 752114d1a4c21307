"""Holding back one destination that asked us to slow down.

When a destination answers "slow down" (``throttling.is_throttling``) or
cannot be reached, sending to it pauses: 30 s the first time, doubling with
each further episode up to 15 minutes, and back to 30 s after a delivery
succeeds. Other destinations are not affected.

An *episode* is one hold: throttling reported while the destination is
already held does not lengthen the hold, because it comes from connections
that were opened before the first refusal and says nothing new. Only
throttling after sending resumed escalates.

A delivery that succeeds resets the escalation but leaves a current hold to
run out: with several connections in flight, one success does not cancel
another connection's "slow down".

Pure state, no clock: the caller passes ``now`` (Unix seconds).
"""

from __future__ import annotations

import math


class DestinationBackoff:
    """Back-off state of one destination."""

    __slots__ = ("_base", "_held_until", "_maximum", "_strikes")

    def __init__(self, *, base: float = 30.0, maximum: float = 900.0) -> None:
        if not (math.isfinite(base) and base > 0):
            raise ValueError(f"base must be a positive number of seconds, not {base!r}")
        if not (math.isfinite(maximum) and maximum >= base):
            raise ValueError(
                f"maximum must be a number of seconds no smaller than base ({base}), "
                f"not {maximum!r}"
            )
        self._base = base
        self._maximum = maximum
        self._strikes = 0
        self._held_until = 0.0

    @property
    def held_until(self) -> float:
        """Until when sending is held (Unix seconds); in the past (0.0 at first) when not held."""
        return self._held_until

    @property
    def strikes(self) -> int:
        """Throttling episodes since the last successful delivery."""
        return self._strikes

    def is_held(self, now: float) -> bool:
        return now < self._held_until

    def on_throttled(self, now: float) -> float:
        """Record a "slow down" at ``now``; return until when to hold sending."""
        if self.is_held(now):
            return self._held_until  # the same episode, reported by another connection
        self._strikes += 1
        hold = min(self._base * 2.0 ** min(self._strikes - 1, 64), self._maximum)
        self._held_until = now + hold
        return self._held_until

    def on_success(self) -> None:
        """A delivery succeeded: the next episode starts from ``base`` again."""
        self._strikes = 0

    def __repr__(self) -> str:
        return (
            f"DestinationBackoff(strikes={self._strikes}, held_until={self._held_until}, "
            f"base={self._base}, maximum={self._maximum})"
        )
