"""Queue scale: claim cost and RSS with 10 k vs 100 k (or 1 M) queued messages (run by hand).

    .venv/bin/python -m tests.bench.bench_queue [--sizes 10000,100000] [--engines sqlite,postgresql]

    # the issue's figure (takes a few minutes per engine):
    .venv/bin/python -m tests.bench.bench_queue --sizes 10000,1000000

The appliance runs in this process (HTTP service up, delivery engine off, so
nothing else claims) on a fresh SQLite file or a fresh PostgreSQL database
(tests/support/databases.py, dropped afterwards). Due QUEUED rows are added by
executemany in chunks of 10,000, growing the same queue to each size; at each
size the bench times ``store.queue.claim`` batches of 200 (the engine's
CLAIM_BATCH). Like the engine, it moves each claimed batch on to SENDING and
then DELIVERED (the table keeps the row, the partial index drops it), so every
claim takes the next distinct batch and walks past what earlier claims left;
the rows claimed are topped up with the next size. It times
``store.queue.depth`` (what /readyz and the engine's gauges read), and reads
the process's RSS (VmRSS, after a garbage collection).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import trio

from appliance.domain.ids import new_id
from appliance.domain.message_status import MessageStatus
from appliance.services.delivery import CLAIM_BATCH
from appliance.store.schema import messages, send_requests
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.databases import fresh_database

CHUNK = 10_000
CLAIMS = 30


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _grow(app: RunningAppliance, request_id: str, made: int, count: int) -> None:
    """Add ``count`` due QUEUED rows; ``made`` rows of the request exist already."""
    tenant = app.init.tenant_id
    now = time.time()
    have, want = made, made + count
    while have < want:
        n = min(CHUNK, want - have)
        rows: list[dict[str, Any]] = [
            {
                "id": new_id("msg"),
                "tenant_id": tenant,
                "request_id": request_id,
                "personalization": have + i,
                "recipient": f"r{have + i}@example.test",
                "recipient_domain": "example.test",
                "from_email": "bench@sender.test",
                "subject": "Queue scale",
                "status": MessageStatus.QUEUED.value,
                "due_at": now - random.random() * 3600,
                "attempts": 0,
                "sandbox": False,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ]
        await app.ctx.store.db.write(lambda conn, rows=rows: conn.execute(messages.insert(), rows))
        have += n


async def _claim_costs(app: RunningAppliance) -> list[float]:
    queue, db = app.ctx.store.queue, app.ctx.store.db
    costs: list[float] = []
    for _ in range(CLAIMS):
        start = time.perf_counter()
        claimed = await queue.claim("bench", limit=CLAIM_BATCH, lease_seconds=300, now=time.time())
        costs.append(time.perf_counter() - start)
        assert len(claimed) == CLAIM_BATCH, len(claimed)
        ids = [m.id for m in claimed]
        await queue.advance("bench", ids, MessageStatus.SENDING, now=time.time())
        done = (
            messages.update()
            .where(messages.c.id.in_(ids))
            .values(status=MessageStatus.DELIVERED.value, lease_owner=None, lease_until=None)
        )
        await db.write(lambda conn, done=done: conn.execute(done))
    return costs


async def _depth_cost(app: RunningAppliance) -> float:
    start = time.perf_counter()
    depth = await app.ctx.store.queue.depth(now=time.time())
    elapsed = time.perf_counter() - start
    assert depth.due > 0
    return elapsed


async def bench_engine(engine: str, sizes: list[int]) -> list[tuple[str, int, dict[str, float]]]:
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, fresh_database(engine, Path(tmp)) as url:
        config = appliance_config(Path(tmp) / "data", url, log_level="warning")
        async with run_appliance(config) as app:
            request_id = new_id("req")
            request = {
                "id": request_id,
                "tenant_id": app.init.tenant_id,
                "payload": b"x",
                "message_count": max(sizes) + len(sizes) * CLAIMS * CLAIM_BATCH,
                "created_at": time.time(),
            }
            await app.ctx.store.db.write(lambda c: c.execute(send_requests.insert(), [request]))
            made = queued = 0
            for size in sizes:
                began = time.perf_counter()
                await _grow(app, request_id, made, size - queued)
                insert_rate = (size - queued) / (time.perf_counter() - began)
                made += size - queued
                queued = size - CLAIMS * CLAIM_BATCH  # what the claims below deliver
                if engine == "postgresql":
                    await app.ctx.store.db.write(lambda c: c.execute(sa.text("ANALYZE messages")))
                costs = await _claim_costs(app)
                depth = await _depth_cost(app)
                gc.collect()
                rows.append(
                    (
                        app.ctx.store.dialect,
                        size,
                        {
                            "insert_rate": insert_rate,
                            "claim_median": statistics.median(costs) * 1000,
                            "claim_max": max(costs) * 1000,
                            "depth": depth * 1000,
                            "rss": rss_mb(),
                        },
                    )
                )
    return rows


async def bench(sizes: list[int], engines: list[str]) -> None:
    results = []
    for engine in engines:
        results += await bench_engine(engine, sizes)
    print(f"claims of {CLAIM_BATCH} messages, {CLAIMS} per size; RSS of this process (appliance)")
    print(
        f"{'store':<12}{'queued':>10}{'insert rows/s':>15}{'claim median ms':>17}"
        f"{'claim max ms':>14}{'depth ms':>10}{'RSS MB':>8}"
    )
    for dialect, size, f in results:
        print(
            f"{dialect:<12}{size:>10,}{f['insert_rate']:>15,.0f}{f['claim_median']:>17.1f}"
            f"{f['claim_max']:>14.1f}{f['depth']:>10.1f}{f['rss']:>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated, ascending")
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    trio.run(bench, sizes, args.engines.split(","))


if __name__ == "__main__":
    main()
