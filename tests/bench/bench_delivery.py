"""End-to-end delivery benchmark (run by hand): API → claimed → signed → delivered to a sink MX.

    .venv/bin/python -m tests.bench.bench_delivery [--messages 5000] [--concurrency 16]
        [--only single|bulk]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

Runs the appliance in-process with HTTP and the delivery engine, a test DNS
server and the scripted aiosmtpd MX (tests/support/scripted_mx.py) on
loopback; the sending domain signs with RSA-2048. Two runs:

  - N single-recipient requests from ``--concurrency`` clients;
  - N messages as 1,000-personalization requests.

For each: messages/s from the first request to the last delivery, and the
p50/p99 accept latency. Prints one table. The sink (aiosmtpd, Python
asyncio, one process) is part of what is measured.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

from appliance.domain.message_status import MessageStatus
from tests.support.delivery import SENDER_DOMAIN, DeliverySetup, delivery_setup


def body(recipients: list[str]) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": r}]} for r in recipients],
        "from": {"email": f"bench@{SENDER_DOMAIN}"},
        "subject": "Benchmark",
        "content": [{"type": "text/plain", "value": "Hello from the delivery benchmark.\n" * 20}],
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def send_singles(http: httpx.AsyncClient, messages: int, concurrency: int) -> list[float]:
    """``messages`` single-recipient requests from ``concurrency`` clients; accept latencies."""
    latencies: list[float] = []
    counter = iter(range(messages))

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            r = await http.post("/v3/mail/send", json=body([f"s{i}@example.test"]))
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 202, r.text

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return latencies


async def send_thousands(http: httpx.AsyncClient, messages: int) -> list[float]:
    """``messages // 1000`` requests of 1,000 personalizations, one after the other."""
    latencies: list[float] = []
    for n in range(messages // 1000):
        start = time.perf_counter()
        recipients = [f"t{n}-{i}@example.test" for i in range(1000)]
        r = await http.post("/v3/mail/send", json=body(recipients))
        latencies.append(time.perf_counter() - start)
        assert r.status_code == 202, r.text
    return latencies


async def _delivered(setup: DeliverySetup) -> int:
    counts = await setup.app.ctx.store.messages.count_by_status()
    return counts.get(MessageStatus.DELIVERED.value, 0)


async def _run(
    setup: DeliverySetup, total: int, send: Callable[[], Awaitable[list[float]]]
) -> tuple[float, list[float]]:
    before = await _delivered(setup)
    began = time.perf_counter()
    latencies = await send()
    while await _delivered(setup) < before + total:
        await trio.sleep(0.2)  # a COUNT over the table: poll gently, it competes with the engine
    return time.perf_counter() - began, latencies


async def bench(
    messages: int, concurrency: int, database_url: str | None, runs: tuple[str, ...]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        async with delivery_setup(
            Path(tmp),
            url,
            api_rate_limit=10_000_000,
            log_level="warning",
            delivery_concurrency=500,
            destination_connections=8,
            messages_per_connection=1000,
        ) as setup:
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(
                base_url=setup.app.base_url, headers=setup.app.auth(), limits=limits, timeout=120
            ) as http:

                async def singles() -> list[float]:
                    return await send_singles(http, messages, concurrency)

                async def thousands() -> list[float]:
                    return await send_thousands(http, messages)

                single_time, single_lat = (
                    await _run(setup, messages, singles) if "single" in runs else (0.0, [])
                )
                bulk_total = (messages // 1000) * 1000
                bulk_time, bulk_lat = (
                    await _run(setup, bulk_total, thousands) if "bulk" in runs else (0.0, [])
                )
            received = len(setup.mx.received())
            dialect = setup.app.ctx.store.dialect

    print(f"{'database':<44}{dialect}")
    print(f"{'messages delivered to the sink':<44}{received:,}")
    if single_lat:
        print(
            f"{'single-recipient requests: messages/s':<44}{messages / single_time:,.0f} "
            f"({concurrency} clients, {single_time:.1f} s)"
        )
        print(
            f"{'  accept latency p50 / p99 (ms)':<44}"
            f"{pct(single_lat, 0.5) * 1000:.1f} / {pct(single_lat, 0.99) * 1000:.1f}"
        )
    if bulk_lat:
        print(
            f"{'1,000-recipient requests: messages/s':<44}{bulk_total / bulk_time:,.0f} "
            f"({bulk_time:.1f} s)"
        )
        print(
            f"{'  accept latency median / max (ms)':<44}"
            f"{statistics.median(bulk_lat) * 1000:.0f} / {max(bulk_lat) * 1000:.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url")
    parser.add_argument("--only", choices=["single", "bulk"], help="run one of the two runs")
    args = parser.parse_args()
    runs = (args.only,) if args.only else ("single", "bulk")
    trio.run(bench, args.messages, args.concurrency, args.database_url, runs)


if __name__ == "__main__":
    main()
