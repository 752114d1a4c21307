"""The inbound server end to end: stdlib ``smtplib`` delivers real reports to a running
appliance (HTTP + inbound, SQLite and PostgreSQL), and each lands on its message."""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import trio

from appliance.domain.bounce_report import parse_bounce
from appliance.domain.delivery_outcome import Attempt, Route, delivered
from appliance.domain.ids import new_id
from appliance.protocols.smtp_reply import Reply
from appliance.provisioning import create_full_access_key
from appliance.store.inbound_reports import IncomingReport
from tests.support.admin_session import signed_in
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain
from tests.support.tls_certs import make_self_signed

SENDER_DOMAIN = "mail.example.test"
BOUNCE_DOMAIN = f"bounces.{SENDER_DOMAIN}"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "bounces" / "messages"


# ---------------------------------------------------------------- reports


def rfc3464_dsn(
    *,
    to: str,
    recipient: str,
    message_id: str,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
) -> bytes:
    """A multipart/report DSN as Postfix writes it, returning our original's headers."""
    diagnostic = diagnostic.format(r=recipient)
    return crlf(f"""\
From: MAILER-DAEMON@mx1.example.org (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-boundary"

--dsn-boundary
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--dsn-boundary
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.example.org
Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; inbox.example.org
Diagnostic-Code: {diagnostic}

--dsn-boundary
Content-Type: text/rfc822-headers

From: sender@{SENDER_DOMAIN}
To: {recipient}
Subject: Hello
Message-ID: <{message_id}@{SENDER_DOMAIN}>
X-Postyard-Message-Id: {message_id}

--dsn-boundary--
""")


def exim_text_bounce(*, recipient: str, message_id: str) -> bytes:
    """A non-standard (plain text) bounce; only the returned headers name our message."""
    return crlf(f"""\
From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: postmaster@{BOUNCE_DOMAIN}
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    host mx.example.org [192.0.2.25]
    SMTP error from remote mail server after end of data:
    550 5.7.1 Message rejected due to content restrictions

------ This is a copy of the message, including all the headers. ------

From: sender@{SENDER_DOMAIN}
To: {recipient}
Subject: Hello
Message-ID: <{message_id}@{SENDER_DOMAIN}>
X-Postyard-Message-Id: {message_id}

Hi
""")


def arf_report(*, recipient: str, message_id: str) -> bytes:
    """An RFC 5965 feedback report, sent to the FBL address registered at the provider."""
    return crlf(f"""\
From: Feedback Loop <fbl@isp.example>
To: fbl@{BOUNCE_DOMAIN}
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf-boundary"

--arf-boundary
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from IP
192.0.2.10 on Mon, 23 Nov 2026 10:00:00 +0000.

--arf-boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: <{recipient}>
Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000
Reported-Domain: {SENDER_DOMAIN}

--arf-boundary
Content-Type: message/rfc822

From: sender@{SENDER_DOMAIN}
To: {recipient}
Subject: Hello
Message-ID: <{message_id}@{SENDER_DOMAIN}>
X-Postyard-Message-Id: {message_id}

Hi

--arf-boundary--
""")


def crlf(text: str | bytes) -> bytes:
    """Lines ended with CRLF, as on the wire (smtplib sends bytes as they are)."""
    raw = text.encode() if isinstance(text, str) else text
    return re.sub(rb"\r?\n", b"\r\n", raw)


def verp(message_id: str) -> str:
    return f"bounces+{message_id}@{BOUNCE_DOMAIN}"


# ---------------------------------------------------------------- plumbing


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    config = appliance_config(tmp_path / "data", database_url)
    async with run_appliance(config, services=("http", "inbound")) as running:
        await verified_domain(running, SENDER_DOMAIN)
        yield running


def inbound_port(app: RunningAppliance) -> int:
    return int(app.ctx.listeners["inbound"].rpartition(":")[2])


def _transaction(
    port: int, recipients: list[str], data: bytes, tls: Any = None
) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        if tls is not None:
            smtp.starttls(context=tls)
        smtp.ehlo("mx1.example.org")
        code, text = smtp.mail("")  # the null reverse-path <>, as DSNs use
        assert code == 250, text
        for rcpt in recipients:
            code, text = smtp.rcpt(rcpt)
            assert code == 250, text
        return smtp.data(data)


async def deliver(app: RunningAppliance, recipients: list[str], data: bytes) -> tuple[int, str]:
    """One SMTP transaction with smtplib; the reply to the end of DATA."""
    code, text = await trio.to_thread.run_sync(_transaction, inbound_port(app), recipients, data)
    return code, text.decode()


def report_id_in(reply_text: str) -> str:
    words = [w for w in reply_text.split() if w.startswith("rpt_")]
    assert len(words) == 1, reply_text
    return words[0]


async def send_mail(app: RunningAppliance, recipients: list[str]) -> dict[str, str]:
    """Accept one message per recipient through /v3/mail/send; recipient → message id."""
    body = {
        "personalizations": [{"to": [{"email": r}]} for r in recipients],
        "from": {"email": f"sender@{SENDER_DOMAIN}"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
    }
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
        r = await http.post("/v3/mail/send", json=body)
        assert r.status_code == 202, r.text
        listed = await http.get("/v3/messages", params={"x_message_id": r.headers["X-Message-Id"]})
    return {m["to_email"]: m["msg_id"] for m in listed.json()["messages"]}


async def mark_delivered(app: RunningAppliance, message_id: str) -> None:
    """As the delivery engine leaves a message a remote server accepted."""
    queue = app.ctx.store.queue
    now = time.time()
    claimed = await queue.claim("test-node", limit=100, lease_seconds=60, now=now)
    (message,) = [m for m in claimed if m.id == message_id]
    others = [m.id for m in claimed if m.id != message_id]
    attempt = Attempt(message.id, message.tenant_id, message.recipient, message.request_id, 0)
    route = Route("mx.example.org", None, False, None)
    outcome = delivered(attempt, Reply.build(250, "2.0.0", "Queued"), route, now=now)
    assert await queue.record([outcome], now=now) == [message_id]
    if others:
        await queue.postpone("test-node", others, due_at=now, reason="test", now=now)


async def message_detail(app: RunningAppliance, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
        r = await http.get(f"/v3/messages/{message_id}")
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


def events_of(detail: dict[str, Any], event_type: str) -> list[dict[str, Any]]:
    return [e for e in detail["events"] if e["event_type"] == event_type]


async def admin_get(
    app: RunningAppliance, path: str, key: str | None = None, **params: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(key)) as http:
        return await http.get(f"/api/admin/inbound_reports{path}", params=params)


# ---------------------------------------------------------------- tests


async def test_rfc3464_dsn_bounces_a_delivered_message_hard(app: RunningAppliance) -> None:
    ids = await send_mail(app, ["gone@example.org"])
    message_id = ids["gone@example.org"]
    await mark_delivered(app, message_id)
    dsn = rfc3464_dsn(to=verp(message_id), recipient="gone@example.org", message_id=message_id)

    code, text = await deliver(app, [verp(message_id)], dsn)

    assert code == 250, text
    report_id = report_id_in(text)
    detail = await message_detail(app, message_id)
    assert detail["status"] == "BOUNCED"
    assert "5.1.1" in detail["error_message"]
    assert "after it had been accepted" in detail["error_message"]
    assert "/v3/suppression/bounces" in detail["error_message"]
    (bounce,) = events_of(detail, "bounce")
    assert bounce["bounce_type"] == "hard"
    assert bounce["status"] == "5.1.1"
    assert bounce["smtp_response"].startswith("550 5.1.1")
    assert bounce["metadata"]["source"] == "dsn"
    assert bounce["metadata"]["report_id"] == report_id
    assert bounce["metadata"]["matched_by"] == "verp"
    assert "mx1.example.org" in bounce["metadata"]["reporting_mta"]
    assert "User unknown" in bounce["metadata"]["diagnostic_code"]
    entry = await app.ctx.store.suppressions.get(app.init.tenant_id, "bounces", "gone@example.org")
    assert entry is not None and entry.message_id == message_id and entry.status == "5.1.1"

    r = await admin_get(app, f"/{report_id}")
    assert r.status_code == 200, r.text
    stored = r.json()
    assert stored["matched"] is True and stored["message_id"] == message_id
    assert stored["kind"] == "hard" and stored["envelope_from"] == ""
    assert stored["envelope_to"] == [verp(message_id)]
    assert stored["report"]["applied"]["event_id"] == bounce["event_id"]
    assert "User unknown" in stored["raw"]


async def test_the_same_dsn_twice_is_kept_twice_but_bounces_once(app: RunningAppliance) -> None:
    message_id = (await send_mail(app, ["twice@example.org"]))["twice@example.org"]
    dsn = rfc3464_dsn(to=verp(message_id), recipient="twice@example.org", message_id=message_id)

    first = report_id_in((await deliver(app, [verp(message_id)], dsn))[1])
    second = report_id_in((await deliver(app, [verp(message_id)], dsn))[1])

    assert first != second
    detail = await message_detail(app, message_id)
    assert detail["status"] == "BOUNCED"
    assert len(events_of(detail, "bounce")) == 1
    r = await admin_get(app, f"/{second}")
    assert r.json()["report"]["applied"]["duplicate"] is True


async def test_text_bounce_matched_by_the_returned_postyard_header(
    app: RunningAppliance,
) -> None:
    message_id = (await send_mail(app, ["dave@example.org"]))["dave@example.org"]

    code, text = await deliver(
        app,
        [f"postmaster@{BOUNCE_DOMAIN}"],
        exim_text_bounce(recipient="dave@example.org", message_id=message_id),
    )

    assert code == 250, text
    detail = await message_detail(app, message_id)
    assert detail["status"] == "BOUNCED"
    (bounce,) = events_of(detail, "bounce")
    assert bounce["bounce_type"] == "block"
    assert bounce["metadata"]["matched_by"] == "header"
    assert "content restrictions" in bounce["bounce_reason"]
    store = app.ctx.store
    assert await store.suppressions.get(app.init.tenant_id, "blocks", "dave@example.org")
    assert not await store.suppressions.get(app.init.tenant_id, "bounces", "dave@example.org")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="bounce corpus not present")
async def test_corpus_qmail_bounce_matched_by_message_id(app: RunningAppliance) -> None:
    message_id = (await send_mail(app, ["erin@example.org"]))["erin@example.org"]
    raw = crlf((CORPUS / "sisimai" / "lhost-qmail-13.eml").read_bytes())
    raw = raw.replace(b"nekochan@cx.libsisimai.com", b"erin@example.org")
    raw = raw.replace(
        b"<20240624085201.44446.qmail@nq.example.jp>",
        f"<{message_id}@{SENDER_DOMAIN}>".encode(),
    )

    code, text = await deliver(app, [f"bounces@{BOUNCE_DOMAIN}"], raw)

    assert code == 250, text
    detail = await message_detail(app, message_id)
    assert detail["status"] == "BOUNCED"
    (bounce,) = events_of(detail, "bounce")
    assert bounce["bounce_type"] == "hard"
    assert bounce["status"] == "5.1.2"
    assert bounce["metadata"]["matched_by"] == "message_id"
    assert await app.ctx.store.suppressions.get(app.init.tenant_id, "bounces", "erin@example.org")


async def test_arf_report_is_a_spamreport_and_suppresses(app: RunningAppliance) -> None:
    message_id = (await send_mail(app, ["carol@example.org"]))["carol@example.org"]
    await mark_delivered(app, message_id)

    code, text = await deliver(
        app,
        [f"fbl@{BOUNCE_DOMAIN}"],
        arf_report(recipient="carol@example.org", message_id=message_id),
    )

    assert code == 250, text
    detail = await message_detail(app, message_id)
    assert detail["status"] == "DELIVERED"  # a complaint is about mail that arrived
    (complaint,) = events_of(detail, "spamreport")
    assert complaint["feedback_type"] == "abuse"
    assert complaint["metadata"]["source"] == "arf"
    assert not events_of(detail, "bounce")
    entry = await app.ctx.store.suppressions.get(
        app.init.tenant_id, "spam_reports", "carol@example.org"
    )
    assert entry is not None and entry.message_id == message_id


async def test_delayed_dsn_is_a_deferred_event_not_a_bounce(app: RunningAppliance) -> None:
    message_id = (await send_mail(app, ["slow@example.org"]))["slow@example.org"]
    await mark_delivered(app, message_id)
    dsn = rfc3464_dsn(
        to=verp(message_id),
        recipient="slow@example.org",
        message_id=message_id,
        action="delayed",
        status="4.4.7",
        diagnostic="smtp; 451 4.4.1 Connection timed out, will keep trying",
    )

    code, text = await deliver(app, [verp(message_id)], dsn)

    assert code == 250, text
    detail = await message_detail(app, message_id)
    assert detail["status"] == "DELIVERED"
    assert not events_of(detail, "bounce")
    (deferred,) = events_of(detail, "deferred")
    assert deferred["metadata"]["source"] == "dsn"
    assert "4.4" in (deferred["status"] or "")
    for list_name in ("bounces", "blocks"):
        assert not await app.ctx.store.suppressions.get(
            app.init.tenant_id, list_name, "slow@example.org"
        )


async def test_unmatched_dsn_is_kept_and_listed(app: RunningAppliance) -> None:
    unknown = new_id("msg")
    dsn = rfc3464_dsn(to=verp(unknown), recipient="who@example.org", message_id=unknown)

    code, text = await deliver(app, [verp(unknown)], dsn)

    assert code == 250, text
    report_id = report_id_in(text)
    unmatched = (await admin_get(app, "", matched="false")).json()["reports"]
    assert [r["id"] for r in unmatched] == [report_id]
    listed = unmatched[0]
    assert listed["matched"] is False and listed["message_id"] is None
    assert listed["kind"] == "hard" and listed["recipient"] == "who@example.org"
    assert listed["tenant_id"] == app.init.tenant_id  # sent to this tenant's bounce domain
    assert (await admin_get(app, "", matched="true")).json()["reports"] == []
    assert [r["id"] for r in (await admin_get(app, "", kind="hard")).json()["reports"]] == [
        report_id
    ]
    assert (await admin_get(app, "", kind="complaint")).json()["reports"] == []
    detail = (await admin_get(app, f"/{report_id}")).json()
    assert unknown in detail["raw"]


async def test_relay_attempts_are_refused_in_the_conversation(app: RunningAppliance) -> None:
    data = rfc3464_dsn(to="x@example.org", recipient="x@example.org", message_id=new_id("msg"))
    refused_recipients = [
        "someone@example.org",
        f"bounces+{new_id('msg')}@{SENDER_DOMAIN}",  # the sending domain is not the bounce domain
        f"bounces@{BOUNCE_DOMAIN}.attacker.example",
        '"bounces@bounces.mail.example.test"@attacker.example',
    ]

    def attempt() -> smtplib.SMTPRecipientsRefused:
        with smtplib.SMTP("127.0.0.1", inbound_port(app), timeout=30) as smtp:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
                smtp.sendmail("<>", refused_recipients, data)
            return caught.value

    error = await trio.to_thread.run_sync(attempt)
    assert set(error.recipients) == set(refused_recipients)
    for code, text in error.recipients.values():
        assert code == 550
        assert text.startswith(b"5.7.1 ")
        assert b"relay access denied" in text
    listed = (await admin_get(app, "")).json()["reports"]
    assert listed == []


async def test_report_that_cannot_be_stored_gets_451_and_the_retry_lands(
    app: RunningAppliance,
) -> None:
    message_id = (await send_mail(app, ["retry@example.org"]))["retry@example.org"]
    dsn = rfc3464_dsn(to=verp(message_id), recipient="retry@example.org", message_id=message_id)
    db = app.ctx.store.db

    def rename(old: str, new: str) -> None:
        db.write_sync(lambda c: c.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}")))

    await trio.to_thread.run_sync(rename, "inbound_reports", "inbound_reports_away")
    try:
        code, text = await deliver(app, [verp(message_id)], dsn)
    finally:
        await trio.to_thread.run_sync(rename, "inbound_reports_away", "inbound_reports")

    assert (code, text.split()[0]) == (451, "4.3.0")
    detail = await message_detail(app, message_id)
    assert detail["status"] == "QUEUED" and not events_of(detail, "bounce")  # nothing half-done
    code, text = await deliver(app, [verp(message_id)], dsn)
    assert code == 250, text
    assert (await message_detail(app, message_id))["status"] == "BOUNCED"


async def test_reports_are_visible_to_their_tenant_and_unattributed_ones_to_operators(
    app: RunningAppliance,
) -> None:
    store = app.ctx.store
    message_id = (await send_mail(app, ["mine@example.org"]))["mine@example.org"]
    await deliver(
        app,
        [verp(message_id)],
        rfc3464_dsn(to=verp(message_id), recipient="mine@example.org", message_id=message_id),
    )
    orphan_raw = rfc3464_dsn(to="x@example.org", recipient="x@example.org", message_id="none")
    orphan = await store.inbound_reports.record(
        IncomingReport(
            received_at=time.time(),
            remote_ip="192.0.2.1",
            envelope_from="",
            envelope_to=("a@bounces.gone.example",),
            report=parse_bounce(orphan_raw),
            raw=orphan_raw,
            keys=(),
            envelope_tenant_id=None,
        )
    )
    other = await store.tenants.create("Other")
    other_key = await create_full_access_key(store, other.id, "other")
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
        r = await http.post("/v3/api_keys", json={"name": "reader", "scopes": ["messages.read"]})
        assert r.status_code == 201, r.text
        reader_key = r.json()["api_key"]

    mine = [r["id"] for r in (await admin_get(app, "")).json()["reports"]]
    assert len(mine) == 1 and orphan.report.id not in mine  # even a full-access key
    as_reader = [r["id"] for r in (await admin_get(app, "", reader_key)).json()["reports"]]
    assert as_reader == mine
    assert (await admin_get(app, f"/{orphan.report.id}", reader_key)).status_code == 404
    # Another tenant's full-access key sees neither this tenant's reports nor the orphan:
    # an unattributed report is an operator's, a person signed in with tenants.read.
    assert (await admin_get(app, "", other_key)).json()["reports"] == []
    assert (await admin_get(app, f"/{as_reader[0]}", other_key)).status_code == 404
    assert (await admin_get(app, f"/{orphan.report.id}", other_key)).status_code == 404
    async with signed_in(app) as operator:
        seen = (await operator.get("/api/admin/inbound_reports")).json()["reports"]
    assert sorted(r["id"] for r in seen) == sorted([*mine, orphan.report.id])


async def test_admin_list_checks_its_parameters(app: RunningAppliance) -> None:
    for params in ({"matched": "maybe"}, {"kind": "weird"}, {"limit": "0"}, {"offset": "-1"}):
        r = await admin_get(app, "", **params)
        assert r.status_code == 400, params
        (error,) = r.json()["errors"]
        assert error["field"] == next(iter(params))
    async with httpx.AsyncClient(base_url=app.base_url) as http:
        assert (await http.get("/api/admin/inbound_reports")).status_code == 401


async def test_starttls_when_a_certificate_is_configured(tmp_path: Path, sqlite_url: str) -> None:
    cert = make_self_signed(tmp_path / "tls")
    config = appliance_config(
        tmp_path / "data",
        sqlite_url,
        tls_cert_file=str(cert.cert_path),
        tls_key_file=str(cert.key_path),
    )
    async with run_appliance(config, services=("http", "inbound")) as running:
        await verified_domain(running, SENDER_DOMAIN)
        message_id = (await send_mail(running, ["tls@example.org"]))["tls@example.org"]
        dsn = rfc3464_dsn(to=verp(message_id), recipient="tls@example.org", message_id=message_id)
        code, text = await trio.to_thread.run_sync(
            _transaction, inbound_port(running), [verp(message_id)], dsn, cert.client_context()
        )
        assert code == 250, text
        assert (await message_detail(running, message_id))["status"] == "BOUNCED"
