"""Per-API-key request limits with SendGrid's X-RateLimit-* headers.

A fixed window per key (``api_rate_limit`` requests per ``api_rate_window``
seconds). ``X-RateLimit-Reset`` is the Unix time the window ends, as in
SendGrid's rate-limit documentation. The counters are per node: several
nodes behind a balancer each allow the limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class RateLimiter:
    def __init__(self, *, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, *, now: float | None = None) -> RateDecision:
        now = time.time() if now is None else now
        start = math.floor(now / self.window) * self.window
        window_start, count = self._windows.get(key, (start, 0))
        if window_start != start:
            count = 0
            if len(self._windows) > 100_000:  # forget idle keys
                self._windows = {k: v for k, v in self._windows.items() if v[0] == start}
        allowed = count < self.limit
        if allowed:
            count += 1
        self._windows[key] = (start, count)
        return RateDecision(
            allowed, self.limit, max(self.limit - count, 0), math.ceil(start + self.window)
        )
