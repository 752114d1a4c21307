"""Webhook fan-out: events/s delivered to a local receiver (run by hand).

    .venv/bin/python -m tests.bench.bench_webhooks [--events 10000] [--webhooks 1]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

The appliance runs in this process with HTTP and the production webhook
dispatcher (services.webhooks, default settings: batches of 100, one batch in
flight per webhook). ``--webhooks`` webhooks (SendGrid format, signed with
ECDSA P-256) point at the h11 receiver of tests/support/webhook_receiver.py,
in this process too. ``--events`` ``processed`` events come from
1,000-personalization ``/v3/mail/send`` requests (nothing is delivered: the
delivery engine is off). Reported: events/s from the first request to the last
event at the receiver, and the dispatcher's own rate from the first POST to
the last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
import trio

from tests.bench.bench_delivery import body
from tests.support.appliance import appliance_config, run_appliance
from tests.support.delivery import SENDER_DOMAIN
from tests.support.sending import verified_domain
from tests.support.webhook_receiver import Answer, Received, open_receiver


async def bench(events: int, hooks: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        config = appliance_config(
            Path(tmp) / "data", url, api_rate_limit=10_000_000, log_level="warning"
        )
        async with (
            run_appliance(config, services=("http", "webhooks")) as app,
            open_receiver() as receiver,
        ):
            await verified_domain(app, SENDER_DOMAIN)
            arrivals: list[tuple[float, int]] = []
            done = trio.Event()
            want = (events // 1000) * 1000 * hooks

            def count(request: Received) -> Answer:
                arrivals.append((time.perf_counter(), len(json.loads(request.body))))
                if sum(n for _, n in arrivals) >= want:
                    done.set()
                return 200, {}, b"ok"

            receiver.answer = count
            async with httpx.AsyncClient(
                base_url=app.base_url, headers=app.auth(), timeout=120
            ) as http:
                for _ in range(hooks):
                    r = await http.post(
                        "/v3/user/webhooks",
                        json={"url": receiver.url, "signed": True, "format": "sendgrid"},
                    )
                    assert r.status_code in (200, 201), r.text
                await trio.sleep(2.5)  # the dispatcher's poll starts a worker per webhook
                began = time.perf_counter()
                for n in range(events // 1000):
                    recipients = [f"w{n}-{i}@example.test" for i in range(1000)]
                    r = await http.post("/v3/mail/send", json=body(recipients))
                    assert r.status_code == 202, r.text
                accepted = time.perf_counter() - began
                with trio.fail_after(600):
                    await done.wait()
            dialect = app.ctx.store.dialect
    first, last = arrivals[0][0], arrivals[-1][0]
    delivered = sum(n for _, n in arrivals)
    print(f"{'database':<46}{dialect}")
    print(f"{'webhooks (signed, SendGrid format)':<46}{hooks}")
    print(f"{'events delivered / POSTs':<46}{delivered:,} / {len(arrivals):,}")
    print(f"{'requests accepted in (s)':<46}{accepted:.1f}")
    print(f"{'events/s, first request to last event':<46}{delivered / (last - began):,.0f}")
    print(f"{'events/s, first POST to last POST':<46}{delivered / max(last - first, 1e-9):,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--webhooks", type=int, default=1)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    trio.run(bench, args.events, args.webhooks, args.database_url)


if __name__ == "__main__":
    main()
