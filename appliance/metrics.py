"""Prometheus metrics, one registry per running appliance (no module globals).

Counters and histograms are updated on the hot paths; service health is
collected at scrape time from the health registry, so ``/metrics`` can never
disagree with ``/readyz``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
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


class DeliveryMetrics:
    """The delivery engine's figures: outcomes, latency, connections, queue depth."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "postyard_delivery_outcomes",
            "Delivery attempts by outcome (delivered, deferred, bounced, failed, postponed)",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "postyard_delivery_latency_seconds",
            "From acceptance to delivery, per delivered message",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            "postyard_smtp_transaction_seconds",
            "One SMTP transaction (MAIL to the final reply)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.connect_seconds = Histogram(
            "postyard_smtp_connect_seconds",
            "Opening an SMTP session (DNS, TCP, greeting, EHLO, STARTTLS, AUTH)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.connections = Gauge(
            "postyard_smtp_connections", "Open outbound SMTP connections", registry=registry
        )
        self.queue_due = Gauge(
            "postyard_queue_due", "Messages due for delivery now", registry=registry
        )
        self.queue_scheduled = Gauge(
            "postyard_queue_scheduled", "Messages waiting for a later attempt", registry=registry
        )
        self.queue_in_flight = Gauge(
            "postyard_queue_in_flight",
            "Messages claimed by a node and not settled",
            registry=registry,
        )
        self.oldest_due_age = Gauge(
            "postyard_queue_oldest_due_age_seconds",
            "How long the most overdue message has been waiting",
            registry=registry,
        )
        self.destinations_held = Gauge(
            "postyard_destinations_held",
            "Destinations backing off because they asked us to slow down or were unreachable",
            registry=registry,
        )


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
        self.delivery = DeliveryMetrics(self.registry)
        self.registry.register(_HealthCollector(health))

    def render(self) -> bytes:
        return generate_latest(self.registry)
