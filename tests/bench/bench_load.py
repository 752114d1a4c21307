"""Open-loop load on ``POST /v3/mail/send``: p99 at a fixed request rate (run by hand).

    .venv/bin/python -m tests.bench.bench_load [--rate 500] [--seconds 20]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

The appliance runs in this process (HTTP only: accepting, not delivering).
The load comes from a second process (this module with ``--client``): request
i is due at start + i / rate whatever happened to the others (open loop, so a
slow server is not hidden by fewer requests), each on its own trio task over a
pool of up to 256 keep-alive httpx connections, and its latency counts from
the moment it was due. The client prints the latencies as JSON; the server
side prints one table: achieved rate, p50/p90/p99/max, errors; then the
accept time of one 1,000-personalization request on the idle server
(median of 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

from tests.bench.bench_delivery import body, pct
from tests.support.appliance import appliance_config, run_appliance
from tests.support.delivery import SENDER_DOMAIN
from tests.support.sending import verified_domain


async def client(url: str, key: str, rate: float, seconds: float) -> None:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:
        # Warm the pool a little, so connection setup is not the first second's story.
        for i in range(20):
            await http.post("/v3/mail/send", json=body([f"warm{i}@example.test"]))
        start = trio.current_time()

        async def one(i: int) -> None:
            due = start + i / rate
            try:
                r = await http.post("/v3/mail/send", json=body([f"l{i}@example.test"]))
                if r.status_code != 202:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(trio.current_time() - due)

        async with trio.open_nursery() as nursery:
            for i in range(total):
                await trio.sleep_until(start + i / rate)
                nursery.start_soon(one, i)
        elapsed = trio.current_time() - start
    print(json.dumps({"latencies": latencies, "errors": errors, "elapsed": elapsed}))


async def bench(rate: float, seconds: float, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        config = appliance_config(
            Path(tmp) / "data", url, api_rate_limit=10_000_000, log_level="warning"
        )
        async with run_appliance(config, services=("http",)) as app:
            await verified_domain(app, SENDER_DOMAIN)
            command = [sys.executable, "-m", "tests.bench.bench_load", "--client"]
            command += [app.base_url, app.api_key, str(rate), str(seconds)]
            done = await trio.run_process(command, capture_stdout=True, stderr=subprocess.STDOUT)
            result = json.loads(done.stdout.decode().strip().splitlines()[-1])
            big: list[float] = []
            async with httpx.AsyncClient(
                base_url=app.base_url, headers=app.auth(), timeout=60
            ) as http:
                for n in range(5):
                    recipients = [f"b{n}-{i}@example.test" for i in range(1000)]
                    began = time.perf_counter()
                    r = await http.post("/v3/mail/send", json=body(recipients))
                    big.append(time.perf_counter() - began)
                    assert r.status_code == 202, r.text
            dialect = app.ctx.store.dialect
    lat: list[float] = result["latencies"]
    print(f"{'database':<40}{dialect}")
    print(f"{'offered rate (requests/s)':<40}{rate:,.0f} for {seconds:g} s (open loop)")
    print(f"{'achieved rate (requests/s)':<40}{len(lat) / result['elapsed']:,.0f}")
    print(
        f"{'latency p50 / p90 / p99 / max (ms)':<40}"
        f"{pct(lat, 0.5) * 1000:.1f} / {pct(lat, 0.9) * 1000:.1f} / "
        f"{pct(lat, 0.99) * 1000:.1f} / {max(lat) * 1000:.1f}"
    )
    print(f"{'errors':<40}{result['errors'] or 'none'}")
    print(
        f"{'1,000-recipient request, idle (ms)':<40}median {statistics.median(big) * 1000:.0f}, "
        f"max {max(big) * 1000:.0f}"
    )


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        _, _, url, key, rate, seconds = sys.argv
        trio.run(client, url, key, float(rate), float(seconds))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    trio.run(bench, args.rate, args.seconds, args.database_url)


if __name__ == "__main__":
    main()
