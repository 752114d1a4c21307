"""Where the engine sends: the next MX when one is down, IP pool source addresses, relays."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.domain.message_status import MessageStatus
from tests.support.delivery import delivery_setup
from tests.support.smtp_sink import StartSink
from tests.support.tls_certs import make_self_signed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_the_next_mx_is_tried_when_the_first_refuses_connections(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with delivery_setup(tmp_path, sqlite_url) as setup:
        # 127.0.0.9 has nothing listening on the MX port: connection refused.
        setup.dns.zones.update(
            {
                "twomx.test": {"MX": ["10 down.twomx.test.", "20 mx.example.test."]},
                "down.twomx.test": {"A": ["127.0.0.9"]},
            }
        )
        x_id = await setup.send(["someone@twomx.test"])
        message = (await setup.wait_settled(x_id))["someone@twomx.test"]
        assert message.status is MessageStatus.DELIVERED
        events = await setup.app.ctx.store.messages.events_for(message.id)
        assert events[-1].data["mx_host"] == "mx.example.test"


async def test_an_ip_pool_sends_from_its_own_addresses(tmp_path: Path, database_url: str) -> None:
    async with delivery_setup(tmp_path, database_url) as setup:
        created = await setup.http.post(
            "/api/admin/ip_pools",
            json={"name": "transactional", "addresses": ["127.0.0.2", "127.0.0.3"]},
            headers=setup.app.auth(),
        )
        assert created.status_code in (200, 201), created.text
        x_id = await setup.send(
            [f"pooled{i}@example.test" for i in range(4)], ip_pool_name="transactional"
        )
        settled = await setup.wait_settled(x_id)
        assert {m.status for m in settled.values()} == {MessageStatus.DELIVERED}
        received = await setup.mx.wait_received(4)
        assert {m["peer"]["address"] for m in received} <= {"127.0.0.2", "127.0.0.3"}
        default = await setup.send(["plain@example.test"])
        await setup.wait_settled(default)
        (plain,) = [m for m in setup.mx.received() if m["rcpt_tos"] == ["plain@example.test"]]
        assert plain["peer"]["address"] == "127.0.0.1"


async def test_a_pool_with_a_relay_sends_through_the_smart_host(
    tmp_path: Path, sqlite_url: str, start_sink: StartSink
) -> None:
    cert = make_self_signed(tmp_path / "tls")
    relay_sink = await start_sink(
        "--auth", "relayuser:relaypass", "--cert", str(cert.cert_path), "--key", str(cert.key_path)
    )
    async with delivery_setup(tmp_path, sqlite_url) as setup:
        auth = setup.app.auth()
        relay = await setup.http.post(
            "/api/admin/relays",
            json={
                "name": "smarthost",
                "host": "127.0.0.1",
                "port": relay_sink.port,
                "tls_mode": "starttls",
                "verify_tls": False,
                "username": "relayuser",
                "password": "relaypass",
            },
            headers=auth,
        )
        assert relay.status_code in (200, 201), relay.text
        pool = await setup.http.post(
            "/api/admin/ip_pools",
            json={"name": "relayed", "addresses": ["127.0.0.1"], "relay_id": relay.json()["id"]},
            headers=auth,
        )
        assert pool.status_code in (200, 201), pool.text
        x_id = await setup.send(["far@example.test"], ip_pool_name="relayed")
        message = (await setup.wait_settled(x_id))["far@example.test"]
        assert message.status is MessageStatus.DELIVERED
        (received,) = relay_sink.received()
        assert received["rcpt_tos"] == ["far@example.test"]
        assert received["mail_from"] == f"bounces+{message.id}@bounces.sender.test"
        assert setup.mx.received() == []  # not the recipient's MX
        events = await setup.app.ctx.store.messages.events_for(message.id)
        assert events[-1].data["relay"] == "smarthost"
        assert events[-1].data["tls"] is True
