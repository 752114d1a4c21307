"""Benchmark ``POST /v3/mail/send`` against a real appliance (run by hand).

    .venv/bin/python -m tests.bench.bench_mail_send [--requests 2000] [--concurrency 32]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

Starts the appliance in-process (SQLite in a temp dir unless a URL is given),
verifies a sending domain, then measures:
  - single-recipient requests/s with N concurrent httpx clients, and the
    p50/p99 accept latency;
  - the latency of one 1,000-personalization request (median of 5).
Prints one table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import trio

from tests.support.appliance import appliance_config, run_appliance
from tests.support.sending import verified_domain

FROM = "bench@bench.example.test"


def _single(i: int) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": f"user{i}@example.org"}]}],
        "from": {"email": FROM},
        "subject": "Benchmark",
        "content": [{"type": "text/plain", "value": "Hello from the benchmark"}],
    }


def _thousand(n: int) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": f"u{n}-{i}@example.org"}]} for i in range(1000)],
        "from": {"email": FROM},
        "subject": "Benchmark",
        "content": [{"type": "text/plain", "value": "Hello"}],
    }


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def bench(requests: int, concurrency: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        config = appliance_config(
            Path(tmp) / "data", url, api_rate_limit=10_000_000, log_level="warning"
        )
        async with run_appliance(config) as app:
            await verified_domain(app, "bench.example.test")
            latencies: list[float] = []
            counter = iter(range(requests))
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(
                base_url=app.base_url, headers=app.auth(), limits=limits, timeout=60
            ) as http:

                async def worker() -> None:
                    for i in counter:
                        start = time.perf_counter()
                        r = await http.post("/v3/mail/send", json=_single(i))
                        latencies.append(time.perf_counter() - start)
                        assert r.status_code == 202, r.text

                began = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for _ in range(concurrency):
                        nursery.start_soon(worker)
                elapsed = time.perf_counter() - began

                big: list[float] = []
                for n in range(5):
                    start = time.perf_counter()
                    r = await http.post("/v3/mail/send", json=_thousand(n))
                    big.append(time.perf_counter() - start)
                    assert r.status_code == 202, r.text
            queued = await app.ctx.store.messages.count_by_status()

    print(f"{'database':<34}{app.ctx.store.dialect}")
    print(f"{'single-recipient requests':<34}{requests} ({concurrency} concurrent clients)")
    print(f"{'requests/s':<34}{requests / elapsed:,.0f}")
    print(
        f"{'accept latency p50 / p99 (ms)':<34}"
        f"{_pct(latencies, 0.5) * 1000:.1f} / {_pct(latencies, 0.99) * 1000:.1f}"
    )
    print(
        f"{'1,000-recipient request (ms)':<34}median {statistics.median(big) * 1000:.0f}, "
        f"max {max(big) * 1000:.0f}"
    )
    print(f"{'messages queued':<34}{sum(queued.values()):,}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    trio.run(bench, args.requests, args.concurrency, args.database_url)


if __name__ == "__main__":
    main()
