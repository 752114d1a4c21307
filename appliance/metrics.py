"""Prometheus metrics, one registry per running appliance (no module globals).

Counters and histograms are updated on the hot paths; service health is
collected at scrape time from the health registry, so ``/metrics`` can never
disagree with ``/readyz``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.health import HealthRegistry, ServiceState


class _HealthCollector(Collector):
    def __init__(self, health: HealthRegistry) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        up = GaugeMetricFamily(
            "postyard_service_up",
            "1 when the service runs with a fresh heartbeat",
            labels=["service"],
        )
        restarts = GaugeMetricFamily(
            "postyard_service_restarts", "Restarts after a crash since start", labels=["service"]
        )
        age = GaugeMetricFamily(
            "postyard_service_heartbeat_age_seconds",
            "Seconds since the last heartbeat",
            labels=["service"],
        )
        for name, svc in self._health.services.items():
            healthy = svc.is_healthy(now=now, stale_after=self._health.stale_after)
            up.add_metric([name], 1.0 if healthy else 0.0)
            restarts.add_metric([name], float(svc.restarts))
            if svc.last_heartbeat is not None and svc.state is ServiceState.RUNNING:
                age.add_metric([name], now - svc.last_heartbeat)
        yield from (up, restarts, age)


class Metrics:
    def __init__(self, health: HealthRegistry) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "postyard_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "postyard_http_request_duration_seconds",
            "HTTP request duration",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.service_crashes = Counter(
            "postyard_service_crashes",
            "Service crashes (each is followed by a restart)",
            ["service"],
            registry=self.registry,
        )
        self.registry.register(_HealthCollector(health))

    def render(self) -> bytes:
        return generate_latest(self.registry)
