"""``postyard serve`` as a real process for fault tests: start, SIGKILL, restart, and a mail load.

- ``prepare_store`` initialises a store (tenant, API key) with a verified
  sending domain before any node starts; returns the API key.
- ``serve_env`` is the environment of a node delivering to the scripted MX
  through the test DNS server, everything on 127.0.0.1.
- ``ServeNode`` runs one ``python -m appliance.cli serve`` (stderr appended to
  a log file), kills it with SIGKILL, starts it again, stops it with SIGTERM.
- ``MailLoad`` posts ``/v3/mail/send`` requests of unique recipients until a
  number of messages were accepted, surviving nodes that die under it: a
  202 is *accepted*, a request that got no answer or a 5xx is *unknown*
  (it may or may not have been stored), a 4xx fails the test.
- ``in_flight_ids`` reads which messages a (dead) node had claimed: only
  those may be sent twice.

Full counts run by hand: ``POSTYARD_FAULT_FULL=1`` (see ``fault_scale``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import trio

from appliance.domain.dkim_keys import generate_key_pair
from appliance.domain.message_status import IN_FLIGHT
from appliance.runner import open_appliance_initialized
from appliance.store.domains import StoredDkimKey
from appliance.store.schema import messages
from tests.support.appliance import appliance_config
from tests.support.delivery import SENDER_DOMAIN

FULL = os.environ.get("POSTYARD_FAULT_FULL", "") not in ("", "0")


def fault_scale(ci: int, full: int) -> int:
    """``ci`` in the normal suite, ``full`` with POSTYARD_FAULT_FULL=1 (the issue's counts)."""
    return full if FULL else ci


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def sink_message_ids(received: list[dict[str, Any]]) -> Counter[str]:
    """Message ids as the sink saw them, from the VERP envelope sender."""
    return Counter(str(m["mail_from"]).split("+", 1)[1].split("@", 1)[0] for m in received)


async def prepare_store(database_url: str, data: Path) -> str:
    """Initialise the store and a verified sending domain; returns the API key."""
    config = appliance_config(data, database_url)
    async with open_appliance_initialized(config) as (ctx, created):
        assert created is not None
        pair = generate_key_pair()
        domain = await ctx.store.domains.create(
            tenant_id=created.tenant_id,
            name=SENDER_DOMAIN,
            ownership_token="t" * 32,
            dkim=StoredDkimKey(
                pair.selector,
                pair.algorithm,
                ctx.secrets.encrypt(pair.private_key_pem),
                pair.public_txt,
            ),
        )
        await ctx.store.domains.record_check(
            domain.tenant_id, domain.id, verified=True, result={"test": "fixture"}
        )
        return created.api_key


def serve_env(
    *, data: Path, database_url: str, http_port: int, dns: str, mx_port: int, **extra: str
) -> dict[str, str]:
    """A node's environment: loopback listeners, short leases and heartbeats; ``extra``
    are more POSTYARD_* settings by key name (``lease_duration="2"``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTYARD_")}
    env.update(
        POSTYARD_DATA_DIR=str(data),
        POSTYARD_DATABASE_URL=database_url,
        POSTYARD_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        POSTYARD_INBOUND_LISTEN="127.0.0.1:0",
        POSTYARD_SUBMISSION_LISTEN="127.0.0.1:0",
        POSTYARD_DNS_NAMESERVERS=dns,
        POSTYARD_SMTP_PORT=str(mx_port),
        POSTYARD_HOSTNAME="postyard.test",
        POSTYARD_LEASE_DURATION="2",
        POSTYARD_DESTINATION_CONNECTIONS="2",
        POSTYARD_DESTINATION_RATE="400",
        POSTYARD_HEARTBEAT_INTERVAL="0.5",
        POSTYARD_RESTART_BACKOFF_MAX="1",
    )
    env.update({f"POSTYARD_{k.upper()}": v for k, v in extra.items()})
    return env


@dataclass
class ServeNode:
    """One ``postyard serve`` process (started again after each kill)."""

    env: Mapping[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return "http://" + self.env["POSTYARD_HTTP_LISTEN"]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", "serve"],
                env=dict(self.env),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill(self) -> None:
        """SIGKILL: no drain, no lease handed back, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def wait_ready(self, http: httpx.AsyncClient, *, path: str = "/healthz") -> float:
        """Wait until ``path`` answers 200; returns the seconds it took."""
        started = trio.current_time()
        with trio.fail_after(60):
            while True:
                assert self.process is not None and self.process.poll() is None, (
                    f"postyard serve exited during start-up; see {self.log}"
                )
                try:
                    if (await http.get(self.base_url + path)).status_code == 200:
                        return trio.current_time() - started
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


@dataclass
class MailLoad:
    """Posts requests of ``per_request`` unique recipients until ``target`` are accepted."""

    api_key: str
    target: int
    per_request: int = 20
    pause: float = 0.05
    prefix: str = "user"
    accepted: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    done: trio.Event = field(default_factory=trio.Event)

    async def run(self, http: httpx.AsyncClient, base_url: str | None = None) -> None:
        url = (base_url or "") + "/v3/mail/send"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        while len(self.accepted) < self.target:
            self.requests += 1
            count = min(self.per_request, self.target - len(self.accepted))
            recipients = [f"{self.prefix}{self.requests}-{i}@example.test" for i in range(count)]
            body = {
                "personalizations": [{"to": [{"email": r}]} for r in recipients],
                "from": {"email": f"app@{SENDER_DOMAIN}"},
                "subject": "fault test",
                "content": [{"type": "text/plain", "value": "hello"}],
            }
            try:
                response = await http.post(url, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.answers[type(exc).__name__] += 1
                self.unknown.update(recipients)
                await trio.sleep(0.1)
                continue
            self.answers[str(response.status_code)] += 1
            if response.status_code == 202:
                self.accepted.update(recipients)
            elif response.status_code >= 500:
                self.unknown.update(recipients)
                await trio.sleep(0.1)
            else:
                raise AssertionError(f"mail/send refused: {response.status_code} {response.text}")
            await trio.sleep(self.pause)
        self.done.set()


def _in_flight(database_url: str) -> set[str]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.select(messages.c.id).where(
                messages.c.status.in_([s.value for s in IN_FLIGHT])
            )
            return {row.id for row in conn.execute(query)}
    finally:
        engine.dispose()


async def in_flight_ids(database_url: str) -> set[str]:
    """Ids of messages claimed and not settled (PROCESSING, RENDERED, SENDING)."""
    return await trio.to_thread.run_sync(_in_flight, database_url)


def _statuses(database_url: str) -> dict[str, str]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(messages.c.recipient, messages.c.status))
            return {row.recipient: row.status for row in rows}
    finally:
        engine.dispose()


async def statuses_by_recipient(database_url: str) -> dict[str, str]:
    """Every stored message's status, by recipient (recipients are unique in these tests)."""
    return await trio.to_thread.run_sync(_statuses, database_url)
