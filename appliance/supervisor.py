"""The supervisor: one nursery running every service, restarting the ones that crash.

A service is ``async def run(health, *, task_status)``; it calls
``task_status.started()`` only once it is ready (listening, consuming), beats
``health`` while it lives, and returns when ``shutdown`` is set after
draining its work. A service that raises is logged, counted and restarted
after an exponential back-off (reset once it has run for a minute); during
that time ``/readyz`` shows it as restarting and answers 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from appliance.health import HealthRegistry, ServiceHealth, ServiceState
from appliance.metrics import Metrics

log = logging.getLogger("appliance.supervisor")

ServiceFn = Callable[..., Awaitable[None]]
STABLE_AFTER = 60.0  # seconds of running that reset the restart back-off


class ServiceExited(Exception):
    """A service returned while the appliance was not shutting down."""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    run: ServiceFn


class Supervisor:
    def __init__(
        self,
        specs: list[ServiceSpec],
        health: HealthRegistry,
        metrics: Metrics,
        *,
        shutdown: trio.Event,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate service names: {names}")
        self.specs = specs
        self.health = health
        self.metrics = metrics
        self.shutdown = shutdown
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stopped = trio.Event()
        self._scopes: dict[str, trio.CancelScope] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every service in order; report started once each has had its first start."""
        try:
            async with trio.open_nursery() as nursery:
                for spec in self.specs:
                    await nursery.start(self._keep, spec)
                log.info("all services started", extra={"services": [s.name for s in self.specs]})
                task_status.started()
        finally:
            self.stopped.set()

    def restart(self, name: str) -> None:
        """Stop one service's current run; its keeper starts it again (operator action)."""
        scope = self._scopes.get(name)
        if scope is None:
            raise KeyError(f"no running service named {name!r}")
        scope.cancel()

    async def _keep(self, spec: ServiceSpec, *, task_status: trio.TaskStatus[None]) -> None:
        health = self.health.register(spec.name)
        delay = self.backoff_initial
        reported = False
        while not self.shutdown.is_set():
            health.state = ServiceState.STARTING
            began = time.monotonic()
            try:
                with trio.CancelScope() as scope:
                    self._scopes[spec.name] = scope
                    async with trio.open_nursery() as nursery:
                        await nursery.start(partial(self._start_one, spec, health))
                        if not reported:
                            task_status.started()
                            reported = True
                if scope.cancelled_caught:
                    log.info("service restarted by request", extra={"service": spec.name})
                    continue
                if self.shutdown.is_set():
                    break
                raise ServiceExited(f"service {spec.name} returned without being asked to stop")
            except Exception as exc:
                if self.shutdown.is_set():
                    log.warning(
                        "service failed while stopping",
                        extra={"service": spec.name},
                        exc_info=True,
                    )
                    break
                health.restarts += 1
                health.last_error = _describe(exc)
                health.last_error_at = time.time()
                health.state = ServiceState.RESTARTING
                self.metrics.service_crashes.labels(spec.name).inc()
                if time.monotonic() - began >= STABLE_AFTER:
                    delay = self.backoff_initial
                log.error(
                    "service crashed; restarting",
                    extra={
                        "service": spec.name,
                        "restarts": health.restarts,
                        "retry_in_seconds": round(delay, 3),
                        "error": health.last_error,
                    },
                    exc_info=exc,
                )
                if not reported:
                    task_status.started()
                    reported = True
                with trio.move_on_after(delay):
                    await self.shutdown.wait()
                delay = min(delay * 2, self.backoff_max)
            finally:
                self._scopes.pop(spec.name, None)
        health.state = ServiceState.STOPPED
        if not reported:
            task_status.started()
        log.info("service stopped", extra={"service": spec.name})

    async def _start_one(
        self, spec: ServiceSpec, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(spec.run, health)
            health.state = ServiceState.RUNNING
            health.started_at = time.time()
            health.beat()
            log.info("service ready", extra={"service": spec.name})
            task_status.started()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _describe(exc.exceptions[0])
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def beat_until(
    health: ServiceHealth, shutdown: trio.Event, interval: float, **details: Any
) -> None:
    """Heartbeat loop for services whose liveness is 'my nursery is still running'."""
    while not shutdown.is_set():
        health.beat(**details)
        with trio.move_on_after(interval):
            await shutdown.wait()
