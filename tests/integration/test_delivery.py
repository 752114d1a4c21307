"""The delivery engine end to end: API → claim → render, sign → MX over SMTP → outcome.

The recipient MX is a real aiosmtpd server in a subprocess, scripted by
recipient local part (tests/support/scripted_mx.py); names resolve through
the test DNS server. Each outcome must land in the right status, event and
suppression list.
"""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest
import trio

from appliance.domain.message_status import MessageStatus
from appliance.net.dns import dkimpy_dnsfunc
from tests.support.delivery import DeliverySetup, delivery_setup

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def _events(setup: DeliverySetup, message_id: str) -> list[tuple[str, dict[str, object]]]:
    events = await setup.app.ctx.store.messages.events_for(message_id)
    return [(e.event_type, e.data) for e in events]


async def test_outcomes_land_in_status_event_and_suppression(
    tmp_path: Path, database_url: str
) -> None:
    async with delivery_setup(
        tmp_path, database_url, smtp_retry_base_delay=60, smtp_greylist_retry_delay=60
    ) as setup:
        recipients = [
            "ok@example.test",
            "unknown@example.test",
            "disabled@example.test",
            "full@example.test",
            "blocked@example.test",
            "dmarc@example.test",
            "rejectdata@example.test",
            "someone@nullmx.test",
            "someone@nosuchdomain.test",
            "someone@noaddress.test",
            "someone@implicit.test",
        ]
        x_id = await setup.send(recipients)
        settled = await setup.wait_settled(x_id)
        store = setup.app.ctx.store
        tenant = setup.app.init.tenant_id

        expected = {
            "ok@example.test": (MessageStatus.DELIVERED, None, None),
            "someone@implicit.test": (MessageStatus.DELIVERED, None, None),
            "unknown@example.test": (MessageStatus.BOUNCED, "hard", "bounces"),
            "disabled@example.test": (MessageStatus.BOUNCED, "hard", "bounces"),
            "full@example.test": (MessageStatus.BOUNCED, "soft", "bounces"),
            "blocked@example.test": (MessageStatus.BOUNCED, "block", "blocks"),
            "dmarc@example.test": (MessageStatus.BOUNCED, "block", "blocks"),
            "rejectdata@example.test": (MessageStatus.BOUNCED, "block", "blocks"),
            "someone@nullmx.test": (MessageStatus.BOUNCED, "hard", "bounces"),
            "someone@nosuchdomain.test": (MessageStatus.BOUNCED, "hard", "bounces"),
            "someone@noaddress.test": (MessageStatus.BOUNCED, "hard", "bounces"),
        }
        for recipient, (status, bounce_type, suppression_list) in expected.items():
            message = settled[recipient]
            assert message.status is status, (recipient, message)
            assert message.attempts == 1
            events = await _events(setup, message.id)
            kinds = [kind for kind, _ in events]
            assert kinds[0] == "processed"
            if status is MessageStatus.DELIVERED:
                assert kinds[-1] == "delivered"
                data = events[-1][1]
                assert str(data["smtp_response"]).startswith("250")
                assert message.last_reply is not None and message.last_reply.startswith("250")
            else:
                assert kinds[-1] == "bounce", (recipient, events)
                data = events[-1][1]
                assert data["bounce_type"] == bounce_type, (recipient, data)
                assert message.error_message
            for list_name in ("bounces", "blocks"):
                entry = await store.suppressions.get(tenant, list_name, recipient)
                assert (entry is not None) == (list_name == suppression_list), (
                    recipient,
                    list_name,
                )

        unknown = await _events(setup, settled["unknown@example.test"].id)
        bounce = unknown[-1][1]
        assert str(bounce["smtp_response"]).startswith("550 5.1.1")
        assert bounce["status"] == "5.1.1"
        null_mx = await _events(setup, settled["someone@nullmx.test"].id)
        assert null_mx[-1][1]["status"] == "5.1.10"

        # Only the two deliverable recipients reached the MX.
        received = setup.mx.received()
        assert sorted(r for m in received for r in m["rcpt_tos"]) == [
            "ok@example.test",
            "someone@implicit.test",
        ]


async def test_delivered_mail_is_signed_with_a_verp_envelope(
    tmp_path: Path, database_url: str
) -> None:
    async with delivery_setup(tmp_path, database_url) as setup:
        x_id = await setup.send(["reader@example.test"])
        settled = await setup.wait_settled(x_id)
        message = settled["reader@example.test"]
        assert message.status is MessageStatus.DELIVERED
        (received,) = await setup.mx.wait_received(1)
        assert received["mail_from"] == f"bounces+{message.id}@bounces.sender.test"
        data = received["data"].encode("latin-1")
        assert f"X-Postyard-Message-Id: {message.id}".encode() in data
        pair = setup.dkim
        dnsfunc = dkimpy_dnsfunc({f"{pair.selector}._domainkey.sender.test": [pair.public_txt]})
        assert dkim.verify(data, dnsfunc=dnsfunc)
        events = await _events(setup, message.id)
        delivered = events[-1][1]
        assert delivered["mx_host"] == "mx.example.test"
        assert delivered["tls"] is False

        # Operators see the engine at work: queue, destinations, outcomes, latency.
        with trio.fail_after(10):
            while True:
                ready = (await setup.http.get("/readyz")).json()
                details = ready["services"]["delivery"].get("details", {})
                if "mx:example.test" in details.get("destinations", {}):
                    break
                await trio.sleep(0.1)
        assert set(details["queue"]) >= {"due", "scheduled", "in_flight", "oldest_due_age_seconds"}
        assert details["destinations"]["mx:example.test"]["delivered"] == 1
        metrics = (await setup.http.get("/metrics")).text
        assert 'postyard_delivery_outcomes_total{outcome="delivered"} 1.0' in metrics
        assert "postyard_delivery_latency_seconds_count 1.0" in metrics
        assert "postyard_queue_due" in metrics


async def test_opportunistic_starttls_is_used_when_offered(tmp_path: Path, sqlite_url: str) -> None:
    async with delivery_setup(tmp_path, sqlite_url, tls=True) as setup:
        x_id = await setup.send(["secure@example.test"])
        settled = await setup.wait_settled(x_id)
        assert settled["secure@example.test"].status is MessageStatus.DELIVERED
        (received,) = await setup.mx.wait_received(1)
        assert received["tls"] is True
        events = await _events(setup, settled["secure@example.test"].id)
        assert events[-1][1]["tls"] is True


async def test_transient_failures_defer_with_the_next_attempt_scheduled(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with delivery_setup(
        tmp_path, sqlite_url, smtp_retry_base_delay=600, smtp_greylist_retry_delay=300
    ) as setup:
        x_id = await setup.send(
            [
                "tempfail@example.test",
                "greylist@example.test",
                "drop@example.test",
            ]
        )
        settled = await setup.wait_settled(
            x_id, statuses={MessageStatus.DEFERRED, MessageStatus.BOUNCED}
        )
        for recipient, message in settled.items():
            assert message.status is MessageStatus.DEFERRED, (recipient, message)
            assert message.attempts == 1
            events = await _events(setup, message.id)
            kind, data = events[-1]
            assert kind == "deferred"
            assert data["attempt"] == 1
            delay = message.due_at - message.updated_at
            if recipient.startswith("greylist"):
                assert data["greylisted"] is True
                assert 270 <= delay <= 330
            else:
                assert 540 <= delay <= 660, (recipient, delay)


async def test_connections_are_reused_for_one_destination(tmp_path: Path, sqlite_url: str) -> None:
    async with delivery_setup(tmp_path, sqlite_url, destination_connections=1) as setup:
        recipients = [f"user{i}@example.test" for i in range(30)]
        x_id = await setup.send(recipients)
        settled = await setup.wait_settled(x_id)
        assert {m.status for m in settled.values()} == {MessageStatus.DELIVERED}
        received = await setup.mx.wait_received(30)
        assert sorted(r for m in received for r in m["rcpt_tos"]) == sorted(recipients)
        connections = [e for e in setup.mx.log() if e["event"] == "connect"]
        assert len(connections) <= 2, connections


async def test_mail_submitted_over_smtp_is_delivered_to_the_mx(
    tmp_path: Path, database_url: str
) -> None:
    import smtplib
    from email.message import EmailMessage

    import trio

    async with delivery_setup(
        tmp_path, database_url, services=("http", "delivery", "submission")
    ) as setup:
        port = int(setup.app.ctx.listeners["submission"].rpartition(":")[2])
        mail = EmailMessage()
        mail["From"] = "App <app@sender.test>"
        mail["To"] = "reader@example.test"
        mail["Subject"] = "Submitted over SMTP"
        mail.set_content("Hello over port 587.")

        def submit() -> None:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as smtp:
                smtp.login("apikey", setup.app.api_key)
                smtp.send_message(mail)

        await trio.to_thread.run_sync(submit)
        (received,) = await setup.mx.wait_received(1)
        assert received["rcpt_tos"] == ["reader@example.test"]
        assert received["mail_from"].startswith("bounces+msg_")
        data = received["data"]
        assert "Subject: Submitted over SMTP" in data
        assert "Hello over port 587." in data
