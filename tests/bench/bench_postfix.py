"""Postyard against Postfix + OpenDKIM on the same box, in the same run, to the same sink.

    .venv/bin/python -m tests.bench.bench_postfix [--messages 5000] [--concurrency 16]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]
        [--only postfix|postyard]

Needs Debian's ``postfix``, ``opendkim`` (run as root: Postfix drops to its
``postfix`` user). One ``smtp-sink`` (tests/bench/sink.py) on loopback is the
recipient MX of both and dumps every message, so the signatures are checked.

1. Postfix: a throwaway instance in a temp directory (tests/bench/postfix_instance.py)
   with OpenDKIM signing RSA-2048; ``smtp-source`` injects N single-recipient
   messages over ``--concurrency`` reused sessions; messages/s from the first
   injection to the last message at the sink. Then it is torn down.
2. Postyard: the appliance in-process (HTTP + delivery engine), RSA-2048, the
   recipient domain's MX on the sink through the test DNS server; N
   single-recipient ``/v3/mail/send`` requests from ``--concurrency`` clients,
   then N messages as 1,000-personalization requests; messages/s from the first
   request to the last message at the sink, and p50/p99 accept latency.

Prints one table with the ratio Postyard / Postfix.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import httpx
import trio

from appliance.domain.dkim_keys import generate_key_pair
from tests.bench.bench_delivery import pct, send_singles, send_thousands
from tests.bench.postfix_instance import DKIM_DOMAIN, DKIM_SELECTOR, postfix_relay
from tests.bench.sink import CountingSink, counting_sink
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.delivery import SENDER_DOMAIN, delivery_zones
from tests.support.dns_server import DnsServer
from tests.support.sending import verified_domain

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
assert DKIM_DOMAIN == SENDER_DOMAIN

# What smtp-source sends (-F): the same headers and body as bench_delivery's requests.
MESSAGE = (
    f"From: bench@{SENDER_DOMAIN}\n"
    "To: recipient@example.test\n"
    "Subject: Benchmark\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n" + "Hello from the delivery benchmark.\n" * 20
)


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    messages: int
    seconds: float  # first request / injection to the last message at the sink
    latencies: list[float]  # per request (empty for Postfix)
    injected: float = 0.0  # Postfix: seconds until smtp-source had handed over every message

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def _dkim_checked(sink: CountingSink, since: int, public_txt: bytes) -> str:
    """Verify the first message dumped after file number ``since``: "verified" or what failed."""
    files = sink.dumped()
    if len(files) <= since:
        return "no message dumped"
    raw = files[since].read_bytes()
    lines = raw.split(b"\n")
    while lines and lines[0].startswith((b"X-Client-", b"X-Helo-", b"X-Mail-", b"X-Rcpt-")):
        lines.pop(0)
    message = b"\r\n".join(line.rstrip(b"\r") for line in lines)
    if b"DKIM-Signature:" not in message:
        return "not signed"
    ok = dkim.verify(message, dnsfunc=lambda *_a, **_k: public_txt)
    return "RSA-2048 signature verified" if ok else "signature does not verify"


async def run_postfix(
    tmp: Path, sink: CountingSink, messages: int, concurrency: int
) -> tuple[Run, str]:
    pair = generate_key_pair(selector=DKIM_SELECTOR)
    message_file = tmp / "message.txt"
    message_file.write_text(MESSAGE)
    async with postfix_relay(tmp / "postfix", sink.port, pair.private_key_pem) as relay:
        before, dumped = sink.count, len(sink.dumped())
        command = [SMTP_SOURCE, "-d", "-N", "-s", str(concurrency), "-m", str(messages)]
        command += ["-F", str(message_file), "-f", f"bench@{SENDER_DOMAIN}"]
        command += ["-t", "s@example.test", "-M", "bench-client", f"127.0.0.1:{relay.port}"]
        began = time.perf_counter()
        await trio.run_process(command, capture_stdout=True)
        injected = time.perf_counter() - began
        last = await sink.wait_for(before + messages)
        checked = _dkim_checked(sink, dumped, pair.public_txt.encode())
    return Run("Postfix 3.7 + OpenDKIM", messages, last - began, [], injected), checked


@contextlib.asynccontextmanager
async def postyard(
    tmp: Path, url: str, sink_port: int, concurrency: int
) -> AsyncIterator[tuple[RunningAppliance, httpx.AsyncClient, bytes]]:
    dns = DnsServer(delivery_zones())
    async with trio.open_nursery() as nursery:
        await nursery.start(dns.serve)
        config = appliance_config(
            tmp / "data",
            url,
            dns_nameservers=(dns.address,),
            smtp_port=sink_port,
            hostname="postyard.test",
            api_rate_limit=10_000_000,
            log_level="warning",
            delivery_concurrency=500,
            destination_connections=8,
            messages_per_connection=1000,
        )
        async with run_appliance(config, services=("http", "delivery")) as app:
            _domain, pair = await verified_domain(app, SENDER_DOMAIN)
            async with httpx.AsyncClient(
                base_url=app.base_url,
                headers=app.auth(),
                limits=httpx.Limits(max_connections=concurrency),
                timeout=120,
            ) as http:
                yield app, http, pair.public_txt.encode()
        nursery.cancel_scope.cancel()


async def run_postyard(
    tmp: Path, url: str, sink: CountingSink, messages: int, concurrency: int
) -> tuple[list[Run], str, str]:
    runs: list[Run] = []
    async with postyard(tmp, url, sink.port, concurrency) as (app, http, public_txt):
        before, dumped = sink.count, len(sink.dumped())
        began = time.perf_counter()
        latencies = await send_singles(http, messages, concurrency)
        last = await sink.wait_for(before + messages)
        runs.append(Run("Postyard, single-recipient requests", messages, last - began, latencies))
        checked = _dkim_checked(sink, dumped, public_txt)
        bulk = (messages // 1000) * 1000
        if bulk:
            before = sink.count
            began = time.perf_counter()
            latencies = await send_thousands(http, messages)
            last = await sink.wait_for(before + bulk)
            runs.append(Run("Postyard, 1,000-recipient requests", bulk, last - began, latencies))
        dialect = app.ctx.store.dialect
    return runs, checked, dialect


async def bench(
    messages: int, concurrency: int, database_url: str | None, only: str | None
) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.chmod(name, 0o711)  # Postfix's own user reaches its queue in here
        async with counting_sink(tmp / "dump") as sink:
            postfix: Run | None = None
            postyard_runs: list[Run] = []
            checks: dict[str, str] = {}
            dialect = ""
            if only in (None, "postfix"):
                postfix, checks["Postfix"] = await run_postfix(tmp, sink, messages, concurrency)
            if only in (None, "postyard"):
                url = database_url or f"sqlite:///{tmp / 'bench.db'}"
                postyard_runs, checks["Postyard"], dialect = await run_postyard(
                    tmp, url, sink, messages, concurrency
                )
            received = sink.count
    _print(messages, concurrency, dialect, received, postfix, postyard_runs, checks)


def _print(
    messages: int,
    concurrency: int,
    dialect: str,
    received: int,
    postfix: Run | None,
    runs: list[Run],
    checks: dict[str, str],
) -> None:
    print(f"{messages:,} messages, {concurrency} clients/sessions, one smtp-sink on loopback")
    print(f"{'Postyard store':<40}{dialect or '-'}")
    print(f"{'messages received by the sink':<40}{received:,}")
    for who, result in checks.items():
        print(f"{'DKIM of a ' + who + ' message':<40}{result}")
    print()
    print(f"{'run':<40}{'msg/s':>8}{'seconds':>9}{'accept p50/p99 ms':>24}{'x Postfix':>11}")
    table = ([postfix] if postfix else []) + runs
    for run in table:
        if run.latencies and len(run.latencies) >= 20:
            latency = (
                f"{pct(run.latencies, 0.5) * 1000:.0f} / {pct(run.latencies, 0.99) * 1000:.0f}"
            )
        elif run.latencies:
            latency = f"median {statistics.median(run.latencies) * 1000:.0f}"
        else:
            latency = f"(injected in {run.injected:.1f} s)"
        ratio = f"{run.rate / postfix.rate:.2f}" if postfix else "-"
        print(f"{run.name:<40}{run.rate:>8,.0f}{run.seconds:>9.1f}{latency:>24}{ratio:>11}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url")
    parser.add_argument("--only", choices=["postfix", "postyard"])
    args = parser.parse_args()
    trio.run(bench, args.messages, args.concurrency, args.database_url, args.only)


if __name__ == "__main__":
    main()
