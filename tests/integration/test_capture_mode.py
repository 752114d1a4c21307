"""Capture mode end to end: a newcomer sends with no DNS and no MX, and reads the mailbox.

The appliance runs with ``capture_mode`` and the delivery engine; its DNS
server is a loopback port where nothing answers and its SMTP port is closed,
so any lookup or connection attempt would leave the message deferred. The
message must end DELIVERED through the normal outcome path, and the kept
bytes must DKIM-verify against the record the domains API asked to publish.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest
import trio
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Attachment, Content, Mail

from appliance.provisioning import create_full_access_key
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance

CAPTURED_REPLY = "250 2.0.0 captured by postyard (capture mode)"
PDF = b"%PDF-1.4 not really a pdf\n" * 40


def _dead_port(kind: int) -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def capturing(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    config = appliance_config(
        tmp_path / "data",
        database_url,
        capture_mode=True,
        dns_nameservers=(f"127.0.0.1:{_dead_port(socket.SOCK_DGRAM)}",),
        smtp_port=_dead_port(socket.SOCK_STREAM),
        outbound_ips=("127.0.0.1",),  # the domains API needs SPF terms to show the records
        hostname="postyard.test",
    )
    async with run_appliance(config, services=("http", "delivery")) as app:
        yield app


def _send_with_sendgrid_client(app: RunningAppliance, sender: str) -> tuple[int, str]:
    mail = Mail(
        from_email=sender,
        to_emails="ana@example.org",
        subject="Grüße from staging",
        plain_text_content=Content("text/plain", "Hello Ana, plain."),
        html_content=Content("text/html", "<p>Hello <b>Ana</b></p>"),
    )
    mail.attachment = Attachment(
        file_content=base64.b64encode(PDF).decode(),
        file_name="invoice.pdf",
        file_type="application/pdf",
        disposition="attachment",
    )
    sg = SendGridAPIClient(api_key=app.api_key, host=app.base_url)
    response = sg.send(mail)
    return response.status_code, response.headers["X-Message-Id"]


async def _wait_delivered(http: httpx.AsyncClient, x_message_id: str) -> dict[str, Any]:
    with trio.fail_after(20):
        while True:
            found = (await http.get("/v3/messages", params={"x_message_id": x_message_id})).json()
            if found["messages"] and found["messages"][0]["status"] in ("DELIVERED", "BOUNCED"):
                message: dict[str, Any] = (
                    await http.get(f"/v3/messages/{found['messages'][0]['msg_id']}")
                ).json()
                return message
            await trio.sleep(0.05)


async def test_unverified_domain_sends_into_the_mailbox_without_dns_or_mx(
    capturing: RunningAppliance,
) -> None:
    app = capturing
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http:
        ready = (await http.get("/readyz")).json()
        assert ready["capture_mode"] is True

        created = await http.post("/api/admin/domains", json={"domain": "newcomer.test"})
        assert created.status_code == 201, created.text
        domain = created.json()
        assert domain["verified"] is False, "a newcomer has published no DNS records yet"
        dkim_record = next(r for r in domain["dns_records"] if r["kind"] == "dkim")

        status, x_message_id = await trio.to_thread.run_sync(
            _send_with_sendgrid_client, app, "app@newcomer.test"
        )
        assert status == 202

        message = await _wait_delivered(http, x_message_id)
        assert message["status"] == "DELIVERED", message
        assert message["attempts"] == 1 and message["last_smtp_reply"] == CAPTURED_REPLY
        delivered = [e for e in message["events"] if e["event_type"] == "delivered"]
        assert len(delivered) == 1 and delivered[0]["smtp_response"] == CAPTURED_REPLY

        listed = (await http.get("/api/admin/captures")).json()
        assert listed["total"] == 1 and listed["next_cursor"] is None
        assert listed["capture_mode"] is True
        (summary,) = listed["captures"]
        assert set(summary) == {
            "id",
            "message_id",
            "from",
            "to",
            "subject",
            "size",
            "captured_at",
        }
        assert summary["message_id"] == message["msg_id"]
        assert summary["to"] == "ana@example.org"
        assert summary["from"] == f"bounces+{message['msg_id']}@bounces.newcomer.test"
        assert summary["subject"] == "Grüße from staging"

        raw_response = await http.get(f"/api/admin/captures/{summary['id']}/raw")
        assert raw_response.status_code == 200
        assert raw_response.headers["Content-Type"] == "message/rfc822"
        raw = raw_response.content
        assert len(raw) == summary["size"]
        published = {f"{dkim_record['host']}.".encode(): dkim_record["value"].encode()}
        assert raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: published.get(name))

        detail = (await http.get(f"/api/admin/captures/{summary['id']}")).json()
        assert {k: detail[k] for k in summary} == summary
        headers = {h["name"].lower(): h["value"] for h in detail["headers"]}
        assert headers["subject"] == "Grüße from staging"
        assert headers["to"] == "ana@example.org"
        assert headers["x-postyard-message-id"] == message["msg_id"]
        assert "d=newcomer.test" in headers["dkim-signature"]
        assert detail["text"].strip() == "Hello Ana, plain."
        assert detail["html"].strip() == "<p>Hello <b>Ana</b></p>"
        assert detail["attachments"] == [
            {
                "filename": "invoice.pdf",
                "content_type": "application/pdf",
                "size": len(PDF),
                "disposition": "attachment",
                "content_id": None,
            }
        ]

        day = dt.datetime.now(dt.UTC).date().isoformat()
        stats = (await http.get("/v3/stats", params={"start_date": day})).json()
        assert stats[-1]["stats"][0]["metrics"]["delivered"] == 1

        deleted = await http.delete(f"/api/admin/captures/{summary['id']}")
        assert deleted.status_code == 204
        assert (await http.get(f"/api/admin/captures/{summary['id']}/raw")).status_code == 404
        assert (await http.get("/api/admin/captures")).json()["total"] == 0


async def test_a_domain_that_is_not_active_or_not_ours_is_still_refused(
    capturing: RunningAppliance,
) -> None:
    app = capturing
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http:
        created = (await http.post("/api/admin/domains", json={"domain": "paused.test"})).json()
        paused = await http.patch(f"/api/admin/domains/{created['id']}", json={"is_active": False})
        assert paused.status_code == 200, paused.text
        for sender in ("app@paused.test", "app@nobody.test"):
            body = {
                "personalizations": [{"to": [{"email": "ana@example.org"}]}],
                "from": {"email": sender},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "v"}],
            }
            refused = await http.post("/v3/mail/send", json=body)
            assert refused.status_code == 403, refused.text
            assert refused.json()["errors"][0]["message"] == "Sender domain not verified"


async def _seed(app: RunningAppliance, tenant_id: str, n: int) -> list[int]:
    ids = []
    for i in range(n):
        capture = await app.ctx.store.captures.add(
            tenant_id=tenant_id,
            message_id=f"msg_{tenant_id[-6:]}_{i}",
            mail_from=f"bounces+msg_{i}@bounces.a.test",
            rcpt_to=f"r{i}@example.org",
            subject=f"{tenant_id} #{i}",
            raw=f"Subject: {tenant_id} #{i}\r\n\r\nbody\r\n".encode(),
            now=1000.0 + i,
        )
        ids.append(capture.id)
    return ids


async def test_captures_api_isolates_tenants_and_checks_scopes(
    appliance: RunningAppliance, http: httpx.AsyncClient
) -> None:
    store = appliance.ctx.store
    other = await store.tenants.create("other")
    other_key = await create_full_access_key(store, other.id, "other")
    mine = await _seed(appliance, appliance.init.tenant_id, 3)
    theirs = await _seed(appliance, other.id, 2)
    me, them = appliance.auth(), appliance.auth(other_key)

    listed = (await http.get("/api/admin/captures", headers=them)).json()
    assert [c["id"] for c in listed["captures"]] == theirs[::-1] and listed["total"] == 2
    assert listed["capture_mode"] is False
    for path in (f"/api/admin/captures/{mine[0]}", f"/api/admin/captures/{mine[0]}/raw"):
        answer = await http.get(path, headers=them)
        assert answer.status_code == 404
        assert answer.json() == {
            "errors": [{"message": "capture not found", "field": "id", "help": None}]
        }
    assert (await http.delete(f"/api/admin/captures/{mine[0]}", headers=them)).status_code == 404
    emptied = await http.delete("/api/admin/captures", headers=them)
    assert emptied.json() == {"deleted": 2}
    assert (await http.get("/api/admin/captures", headers=me)).json()["total"] == 3

    page1 = (await http.get("/api/admin/captures", headers=me, params={"limit": 2})).json()
    assert [c["id"] for c in page1["captures"]] == [mine[2], mine[1]]
    page2 = (
        await http.get(
            "/api/admin/captures",
            headers=me,
            params={"limit": 2, "cursor": page1["next_cursor"]},
        )
    ).json()
    assert [c["id"] for c in page2["captures"]] == [mine[0]] and page2["next_cursor"] is None
    by_to = await http.get("/api/admin/captures", headers=me, params={"to": "R1@example.org"})
    assert [c["id"] for c in by_to.json()["captures"]] == [mine[1]]
    for params in ({"limit": "0"}, {"cursor": "not-ours"}):
        bad = await http.get("/api/admin/captures", headers=me, params=params)
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] in params
    assert (await http.get("/api/admin/captures/abc", headers=me)).status_code == 404

    reader = await http.post(
        "/v3/api_keys", headers=me, json={"name": "reader", "scopes": ["messages.read"]}
    )
    reader_auth = appliance.auth(reader.json()["api_key"])
    assert (await http.get("/api/admin/captures", headers=reader_auth)).status_code == 200
    refused = await http.delete(f"/api/admin/captures/{mine[0]}", headers=reader_auth)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == "Missing required scope: messages.delete"
    sender = await http.post(
        "/v3/api_keys", headers=me, json={"name": "sender", "scopes": ["mail.send"]}
    )
    sender_auth = appliance.auth(sender.json()["api_key"])
    no_read = await http.get(f"/api/admin/captures/{mine[0]}/raw", headers=sender_auth)
    assert no_read.status_code == 403
    assert no_read.json()["errors"][0]["message"] == "Missing required scope: messages.read"

    assert (await http.delete("/api/admin/captures", headers=me)).json() == {"deleted": 3}


async def test_without_capture_mode_an_unverified_domain_may_not_send(
    appliance: RunningAppliance, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/readyz")).json()["capture_mode"] is False
    from tests.support.sending import verified_domain

    domain, _ = await verified_domain(appliance, "unverified.test")
    await appliance.ctx.store.domains.record_check(
        domain.tenant_id, domain.id, verified=False, result={"test": "records gone"}
    )
    body = {
        "personalizations": [{"to": [{"email": "ana@example.org"}]}],
        "from": {"email": "app@unverified.test"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "v"}],
    }
    refused = await http.post("/v3/mail/send", json=body, headers=appliance.auth())
    assert refused.status_code == 403
    assert json.loads(refused.text)["errors"][0]["message"] == "Sender domain not verified"
