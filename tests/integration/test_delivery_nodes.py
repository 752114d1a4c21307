"""Several delivery engines on one queue, and a node killed mid-delivery.

- Two engines (each with its own store connection pool, as two nodes have)
  share one PostgreSQL queue: no message is sent by both.
- ``postyard serve`` killed with SIGKILL while delivering and started again
  delivers every accepted message (at least once, none lost): the dead
  node's leases expire and its claims return to the queue.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio

from appliance.domain.dkim_keys import generate_key_pair
from appliance.domain.message_status import MessageStatus
from appliance.runner import open_appliance, open_appliance_initialized
from appliance.services.delivery import DeliveryEngine, DeliverySettings
from appliance.store.domains import StoredDkimKey
from tests.support.appliance import appliance_config
from tests.support.delivery import SENDER_DOMAIN, delivery_setup, delivery_zones
from tests.support.dns_server import DnsServer
from tests.support.mx_fixtures import run_scripted_mx

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _message_ids(received: list[dict[str, object]]) -> Counter[str]:
    """Message ids as the sink saw them, from the VERP envelope sender."""
    return Counter(str(m["mail_from"]).split("+", 1)[1].split("@", 1)[0] for m in received)


@pytest.mark.postgres
async def test_two_engines_on_one_postgresql_queue_never_send_a_message_twice(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.support.databases import fresh_database

    with fresh_database("postgresql", tmp_path) as url:
        async with delivery_setup(tmp_path, url, services=("http",)) as setup:
            async with open_appliance(setup.app.ctx.config) as other_ctx:
                engines = [
                    DeliveryEngine(
                        ctx, DeliverySettings.from_context(ctx, concurrency=50), owner=owner
                    )
                    for ctx, owner in ((setup.app.ctx, "node-a"), (other_ctx, "node-b"))
                ]
                recipients = [f"user{i}@example.test" for i in range(300)]
                x_ids = [await setup.send(recipients[i : i + 100]) for i in range(0, 300, 100)]
                async with trio.open_nursery() as nursery:
                    for engine, ctx in zip(engines, (setup.app.ctx, other_ctx), strict=True):
                        await nursery.start(engine.run, ctx.health.register(engine.owner))
                    for x_id in x_ids:
                        settled = await setup.wait_settled(x_id, timeout=60)
                        assert {m.status for m in settled.values()} == {MessageStatus.DELIVERED}
                    received = await setup.mx.wait_received(300)
                    other_ctx.shutdown.set()
                    setup.app.ctx.shutdown.set()
                counts = _message_ids(received)
                assert len(counts) == 300
                assert max(counts.values()) == 1, counts.most_common(3)
                claims = await setup.app.ctx.store.messages.count_by_status()
                assert claims == {"DELIVERED": 300}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prepare_data_dir(env: dict[str, str], database_url: str, data: Path) -> str:
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


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def _wait_ready(http: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    with trio.fail_after(30):
        while True:
            assert process.poll() is None, "postyard serve exited during start-up"
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.1)


async def test_a_node_killed_mid_delivery_loses_nothing(tmp_path: Path, database_url: str) -> None:
    dns = DnsServer(delivery_zones())
    data = tmp_path / "data"
    port = _free_port()
    async with trio.open_nursery() as nursery:
        await nursery.start(dns.serve)
        async with run_scripted_mx(tmp_path / "mx") as mx:
            env = {k: v for k, v in os.environ.items() if not k.startswith("POSTYARD_")}
            env.update(
                POSTYARD_DATA_DIR=str(data),
                POSTYARD_DATABASE_URL=database_url,
                POSTYARD_HTTP_LISTEN=f"127.0.0.1:{port}",
                POSTYARD_INBOUND_LISTEN="127.0.0.1:0",
                POSTYARD_SUBMISSION_LISTEN="127.0.0.1:0",
                POSTYARD_DNS_NAMESERVERS=dns.address,
                POSTYARD_SMTP_PORT=str(mx.port),
                POSTYARD_HOSTNAME="postyard.test",
                POSTYARD_LEASE_DURATION="2",
                POSTYARD_DESTINATION_CONNECTIONS="2",
                POSTYARD_DESTINATION_RATE="400",
                POSTYARD_HEARTBEAT_INTERVAL="0.5",
            )
            key = await _prepare_data_dir(env, database_url, data)
            headers = {"Authorization": f"Bearer {key}"}
            log = tmp_path / "serve.log"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                process = _serve(env, log)
                try:
                    await _wait_ready(http, process)
                    x_ids = []
                    for batch in range(10):
                        body = {
                            "personalizations": [
                                {"to": [{"email": f"user{batch}-{i}@example.test"}]}
                                for i in range(100)
                            ],
                            "from": {"email": f"app@{SENDER_DOMAIN}"},
                            "subject": "crash test",
                            "content": [{"type": "text/plain", "value": "hello"}],
                        }
                        response = await http.post("/v3/mail/send", json=body, headers=headers)
                        assert response.status_code == 202, response.text
                        x_ids.append(response.headers["X-Message-Id"])
                    for kill_after in (150, 500):
                        with trio.fail_after(60):
                            while len(mx.received()) < kill_after:
                                await trio.sleep(0.01)
                        process.send_signal(signal.SIGKILL)
                        process.wait()
                        process = _serve(env, log)
                        await _wait_ready(http, process)
                    with trio.fail_after(90):
                        while True:
                            response = await http.get(
                                "/v3/messages", params={"limit": 1000}, headers=headers
                            )
                            assert response.status_code == 200, response.text
                            statuses = Counter(m["status"] for m in response.json()["messages"])
                            if statuses == Counter({"DELIVERED": 1000}):
                                break
                            await trio.sleep(0.25)
                finally:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
            counts = _message_ids(mx.received())
            assert len(counts) == 1000, "every accepted message reached the MX"
            duplicates = sum(n - 1 for n in counts.values())
            print(f"\ncrash test: 1000 delivered, {duplicates} sent twice (at-least-once)")
        nursery.cancel_scope.cancel()
