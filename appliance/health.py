"""Health of the long-running services: state, heartbeats, restarts.

The supervisor writes it, services beat it, ``/readyz``, ``/metrics`` and the
admin UI read it. A service is healthy when it is running and its last
heartbeat is recent; "the worker died silently and nothing consumes" shows
up as a stale heartbeat or a restarting state, never as silence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ServiceState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(slots=True)
class ServiceHealth:
    name: str
    state: ServiceState = ServiceState.STARTING
    started_at: float | None = None
    last_heartbeat: float | None = None
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def beat(self, **details: Any) -> None:
        """Report liveness, optionally with figures (queue depth, connections…)."""
        self.last_heartbeat = time.time()
        if details:
            self.details.update(details)

    def is_healthy(self, *, now: float, stale_after: float) -> bool:
        if self.state is not ServiceState.RUNNING:
            return False
        return self.last_heartbeat is not None and now - self.last_heartbeat <= stale_after

    def snapshot(self, *, now: float, stale_after: float) -> dict[str, Any]:
        age = None if self.last_heartbeat is None else round(now - self.last_heartbeat, 3)
        return {
            "state": self.state.value,
            "healthy": self.is_healthy(now=now, stale_after=stale_after),
            "last_heartbeat": self.last_heartbeat,
            "heartbeat_age_seconds": age,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            **({"details": dict(self.details)} if self.details else {}),
        }


class HealthRegistry:
    def __init__(self, *, heartbeat_interval: float) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.services: dict[str, ServiceHealth] = {}

    @property
    def stale_after(self) -> float:
        return self.heartbeat_interval * 3

    def register(self, name: str) -> ServiceHealth:
        return self.services.setdefault(name, ServiceHealth(name))

    def all_healthy(self) -> bool:
        now = time.time()
        return all(
            s.is_healthy(now=now, stale_after=self.stale_after) for s in self.services.values()
        )

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        return {
            name: s.snapshot(now=now, stale_after=self.stale_after)
            for name, s in sorted(self.services.items())
        }
