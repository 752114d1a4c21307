"""A delivering appliance for tests: test DNS, a scripted recipient MX, a verified sender.

``delivery_setup`` runs the appliance with HTTP and the delivery engine; the
recipient domain ``example.test`` has its MX on the scripted aiosmtpd server
(tests/support/scripted_mx.py) and names resolve through the test DNS
server, so every byte stays on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from appliance.domain.dkim_keys import DkimKeyPair
from appliance.domain.message_status import TERMINAL, MessageStatus
from appliance.store.domains import Domain
from appliance.store.messages import Message
from appliance.supervisor import ServiceSpec
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.dns_server import DnsServer, Zones
from tests.support.mx_fixtures import ScriptedMx, run_scripted_mx
from tests.support.sending import verified_domain

SENDER_DOMAIN = "sender.test"
RECIPIENT_DOMAIN = "example.test"


def delivery_zones() -> Zones:
    return Zones(
        {
            RECIPIENT_DOMAIN: {"MX": ["10 mx.example.test."]},
            "mx.example.test": {"A": ["127.0.0.1"]},
            "nullmx.test": {"MX": ["0 ."]},
            "noaddress.test": {"MX": ["10 gone.noaddress.test."]},
            "implicit.test": {"A": ["127.0.0.1"]},
        }
    )


@dataclass
class DeliverySetup:
    app: RunningAppliance
    mx: ScriptedMx
    dns: DnsServer
    http: httpx.AsyncClient
    domain: Domain
    dkim: DkimKeyPair

    async def send(self, recipients: Sequence[str], **extra: Any) -> str:
        """POST /v3/mail/send with one personalization per recipient; returns X-Message-Id."""
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": r}]} for r in recipients],
            "from": {"email": f"app@{SENDER_DOMAIN}", "name": "App"},
            "subject": "Delivery test",
            "content": [{"type": "text/plain", "value": "Hello from the delivery test."}],
            **extra,
        }
        response = await self.http.post("/v3/mail/send", json=body, headers=self.app.auth())
        assert response.status_code == 202, response.text
        return response.headers["X-Message-Id"]

    async def messages(self, x_message_id: str) -> list[Message]:
        store = self.app.ctx.store
        events = await store.messages.events_for_request(x_message_id)
        ids = sorted({e.message_id for e in events if e.message_id})
        found = [await store.messages.get(None, i) for i in ids]
        return [m for m in found if m is not None]

    async def wait_settled(
        self,
        x_message_id: str,
        *,
        statuses: Collection[MessageStatus] = TERMINAL,
        timeout: float = 20,
        poll: float = 0.05,
    ) -> dict[str, Message]:
        """Wait until every message of the request is in one of ``statuses``; by recipient."""
        with trio.fail_after(timeout):
            while True:
                messages = await self.messages(x_message_id)
                if messages and all(m.status in statuses for m in messages):
                    return {m.recipient: m for m in messages}
                await trio.sleep(poll)


@asynccontextmanager
async def delivery_setup(
    tmp_path: Path,
    database_url: str,
    *,
    tls: bool = False,
    services: Collection[str] = ("http", "delivery"),
    extra_services: list[ServiceSpec] | None = None,
    **config: Any,
) -> AsyncIterator[DeliverySetup]:
    dns = DnsServer(delivery_zones())
    async with trio.open_nursery() as nursery:
        await nursery.start(dns.serve)
        async with run_scripted_mx(tmp_path / "mx", tls=tls) as mx:
            settings = {
                "dns_nameservers": (dns.address,),
                "smtp_port": mx.port,
                "hostname": "postyard.test",
                **config,
            }
            app_config = appliance_config(tmp_path / "data", database_url, **settings)
            async with run_appliance(
                app_config, services=services, extra_services=extra_services
            ) as app:
                domain, pair = await verified_domain(app, SENDER_DOMAIN)
                async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as http:
                    yield DeliverySetup(app, mx, dns, http, domain, pair)
        nursery.cancel_scope.cancel()
