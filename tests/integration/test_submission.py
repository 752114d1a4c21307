"""SMTP submission (port 587) driven by stdlib ``smtplib``: API-key AUTH, the shared
acceptance pipeline, and every reply users of hosted relays know (seed 001)."""

from __future__ import annotations

import base64
import json
import smtplib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio

from appliance.domain.message_status import MessageStatus
from appliance.services.composer import Composer
from appliance.store.messages import Message, MessageFilter
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain
from tests.support.tls_certs import TlsCertificate, make_self_signed

T = TypeVar("T")
DOMAIN = "mail.example.test"
FROM = f"app@{DOMAIN}"
PDF = b"%PDF-1.4 fake \x00\x01\x02 report"
PNG = b"\x89PNG\r\n\x1a\n fake logo"


@dataclass
class Submission:
    app: RunningAppliance
    cert: TlsCertificate | None

    @property
    def port(self) -> int:
        return int(self.app.ctx.listeners["submission"].rpartition(":")[2])

    @property
    def tenant_id(self) -> str:
        return self.app.init.tenant_id

    def connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=10)
        smtp.ehlo()
        if self.cert is not None:
            smtp.starttls(context=self.cert.client_context())
            smtp.ehlo()
        return smtp

    def login(self, key: str | None = None) -> smtplib.SMTP:
        smtp = self.connect()
        smtp.login("apikey", key or self.app.api_key)
        return smtp

    async def run(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn)

    async def messages(self, x_message_id: str) -> list[Message]:
        found = await self.app.ctx.store.messages.search(
            self.tenant_id, MessageFilter(x_message_id=x_message_id), limit=100
        )
        return sorted(found, key=lambda m: m.recipient)


@asynccontextmanager
async def submission_appliance(
    tmp_path: Path, database_url: str, *, tls: bool = True, **overrides: Any
) -> AsyncIterator[Submission]:
    cert = make_self_signed(tmp_path / "tls") if tls else None
    if cert is not None:
        overrides |= {"tls_cert_file": str(cert.cert_path), "tls_key_file": str(cert.key_path)}
    config = appliance_config(tmp_path / "data", database_url, **overrides)
    async with run_appliance(config, services=("http", "submission")) as app:
        await verified_domain(app, DOMAIN)
        yield Submission(app, cert)


@pytest.fixture
async def sub(tmp_path: Path, database_url: str) -> AsyncIterator[Submission]:
    async with submission_appliance(tmp_path, database_url) as running:
        yield running


def simple_mail(subject: str = "Hello", sender: str = FROM, to: str = "alice@example.org") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"App <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Hi there")
    return msg.as_bytes(policy=policy.SMTP)


def transaction(
    smtp: smtplib.SMTP, recipients: list[str], data: bytes, sender: str = FROM
) -> tuple[int, str]:
    """MAIL, RCPT each, DATA: the first refusal or the DATA reply, as (code, text)."""
    for code, text in [smtp.mail(sender), *(smtp.rcpt(r) for r in recipients)]:
        if code >= 400:
            smtp.rset()
            return code, text.decode()
    code, text = smtp.data(data)
    return code, text.decode()


def queued_id(reply: tuple[int, str]) -> str:
    code, text = reply
    assert code == 250, reply
    assert text.startswith("2.0.0 Ok: queued as req_"), text
    return text.rpartition(" ")[2]


# --- the happy path -----------------------------------------------------------------------


async def test_smtplib_submits_with_an_api_key_and_the_mail_is_queued(sub: Submission) -> None:
    msg = EmailMessage()
    msg["From"] = f"Shop <{FROM}>"
    msg["To"] = "Alice <alice@example.org>"
    msg["Cc"] = "carol@example.org"
    msg["Subject"] = "Your order ✓"
    msg["X-SMTPAPI"] = json.dumps({"category": "orders", "unique_args": {"order": 42}})
    msg.set_content("Thanks for your order")
    envelope = ["alice@example.org", "carol@example.org", "dave@example.org"]

    def scenario() -> tuple[int, str]:
        with sub.login() as smtp:
            assert smtp.has_extn("starttls") is False  # already under TLS
            return transaction(smtp, envelope, msg.as_bytes(policy=policy.SMTP))

    x_message_id = queued_id(await sub.run(scenario))
    messages = await sub.messages(x_message_id)
    assert [m.recipient for m in messages] == envelope
    assert {m.status for m in messages} == {MessageStatus.QUEUED}
    assert {m.subject for m in messages} == {"Your order ✓"}
    assert {m.from_email for m in messages} == {FROM}
    assert {m.category for m in messages} == {"orders"}
    events = await sub.app.ctx.store.messages.events_for(messages[0].id)
    assert [e.event_type for e in events] == ["processed"]
    assert events[0].data["x_message_id"] == x_message_id
    assert events[0].data["custom_args"] == {"order": "42"}

    payload = json.loads(await sub.app.ctx.store.messages.payload(x_message_id) or b"")
    personalization = payload["personalizations"][0]
    assert personalization["to"] == [{"email": "alice@example.org", "name": "Alice"}]
    assert personalization["cc"] == [{"email": "carol@example.org"}]
    assert personalization["bcc"] == [{"email": "dave@example.org"}]
    assert sub.app.ctx.queue_wakeup.is_set()


async def test_multipart_with_attachments_round_trips_into_the_sent_message(
    sub: Submission,
) -> None:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = "alice@example.org"
    msg["Subject"] = "=?utf-8?q?R=C3=A9sum=C3=A9?="
    msg["List-Unsubscribe"] = "<mailto:leave@mail.example.test>"
    msg["Received"] = "from somewhere by nowhere"
    msg.set_content("plain body\n")
    msg.add_alternative('<p>html body <img src="cid:logo"></p>\n', subtype="html")
    html = msg.get_payload()[1]
    html.add_related(PNG, maintype="image", subtype="png", cid="<logo>", filename="logo.png")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")

    def scenario() -> tuple[int, str]:
        with sub.login() as smtp:
            return transaction(smtp, ["alice@example.org"], msg.as_bytes(policy=policy.SMTP))

    x_message_id = queued_id(await sub.run(scenario))
    (message,) = await sub.messages(x_message_id)
    composed = await Composer(sub.app.ctx).compose(message, now=message.created_at)
    sent = message_from_bytes(composed.data, policy=policy.default)
    assert sent["Subject"] == "Résumé"
    assert sent["List-Unsubscribe"] == "<mailto:leave@mail.example.test>"
    assert sent["Received"] is None
    parts = {p.get_content_type(): p for p in sent.walk() if not p.is_multipart()}
    assert parts["text/plain"].get_content().strip() == "plain body"
    assert "html body" in parts["text/html"].get_content()
    assert parts["application/pdf"].get_content() == PDF
    assert parts["application/pdf"].get_filename() == "report.pdf"
    assert parts["image/png"].get_content() == PNG
    assert parts["image/png"]["Content-ID"] == "<logo>"


async def test_plain_auth_on_a_loopback_listener_without_certificate(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with submission_appliance(tmp_path, sqlite_url, tls=False) as sub:

        def scenario() -> tuple[bool, tuple[int, str]]:
            with sub.login() as smtp:
                return smtp.has_extn("starttls"), transaction(
                    smtp, ["alice@example.org"], simple_mail()
                )

        offers_tls, reply = await sub.run(scenario)
    assert offers_tls is False
    queued_id(reply)


# --- authentication -----------------------------------------------------------------------


async def test_auth_is_offered_only_after_starttls(sub: Submission) -> None:
    def scenario() -> tuple[bool, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", sub.port, timeout=10) as smtp:
            smtp.ehlo()
            return smtp.has_extn("auth"), smtp.docmd("AUTH", "PLAIN")

    offered, (code, text) = await sub.run(scenario)
    assert offered is False
    assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first")


async def test_mail_before_auth_is_530(sub: Submission) -> None:
    def scenario() -> tuple[int, bytes]:
        with sub.connect() as smtp:
            return smtp.mail(FROM)

    assert await sub.run(scenario) == (530, b"5.7.0 Authentication required")


@pytest.mark.parametrize(
    ("username", "password", "says"),
    [
        ("apikey", "SG.not-a-real-key", "API key"),
        ("apikey", "", "API key"),
        ("someone@example.org", None, "username must be apikey"),
    ],
)
async def test_bad_credentials_are_535_5_7_8(
    sub: Submission, username: str, password: str | None, says: str
) -> None:
    def scenario() -> None:
        with sub.connect() as smtp:
            smtp.login(username, sub.app.api_key if password is None else password)

    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        await sub.run(scenario)
    assert caught.value.smtp_code == 535
    text = caught.value.smtp_error.decode()
    assert text.startswith("5.7.8 Authentication credentials invalid")
    assert says in text


async def test_key_without_mail_send_is_535(sub: Submission) -> None:
    async with httpx.AsyncClient(base_url=sub.app.base_url, headers=sub.app.auth()) as http:
        r = await http.post("/v3/api_keys", json={"name": "ro", "scopes": ["messages.read"]})
    narrow = r.json()["api_key"]

    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        await sub.run(lambda: sub.login(narrow))
    assert caught.value.smtp_code == 535
    assert b"5.7.8" in caught.value.smtp_error and b"mail.send" in caught.value.smtp_error


# --- the seed's replies -------------------------------------------------------------------


async def test_unverified_sender_domain_is_550_5_1_0(sub: Submission) -> None:
    def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        with sub.login() as smtp:
            envelope = transaction(smtp, ["a@example.org"], simple_mail(), "x@other.example")
            header = transaction(
                smtp, ["a@example.org"], simple_mail(sender="x@other.example"), FROM
            )
            return envelope, header

    at_mail, at_data = await sub.run(scenario)
    for code, text in (at_mail, at_data):
        assert code == 550
        assert text.startswith("5.1.0 Sender domain other.example is not a verified")


async def test_suppressed_recipient_is_550_5_7_1(sub: Submission) -> None:
    store = sub.app.ctx.store
    await store.suppressions.add(sub.tenant_id, "unsubscribes", "left@example.org")

    def scenario() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with sub.login() as smtp:
            smtp.mail(FROM)
            refused = smtp.rcpt("Left@example.org")
            smtp.rcpt("ok@example.org")
            return refused, smtp.data(simple_mail(to="ok@example.org"))

    (code, text), (data_code, data_text) = await sub.run(scenario)
    assert code == 550
    assert text.decode().startswith("5.7.1 Recipient suppressed: Left@example.org")
    assert "unsubscribes" in text.decode()
    x_message_id = queued_id((data_code, data_text.decode()))
    assert [m.recipient for m in await sub.messages(x_message_id)] == ["ok@example.org"]


async def test_suspended_tenant_is_521_at_auth(sub: Submission) -> None:
    await sub.app.ctx.store.tenants.set_status(sub.tenant_id, "suspended", "bounce rate 9 %")
    plain = base64.b64encode(f"\0apikey\0{sub.app.api_key}".encode()).decode()

    def scenario() -> tuple[int, bytes]:
        smtp = sub.connect()
        try:
            return smtp.docmd("AUTH", f"PLAIN {plain}")
        finally:
            smtp.close()

    code, text = await sub.run(scenario)
    assert code == 521
    assert b"suspended" in text


async def test_tenant_suspended_during_a_session_is_521_at_data(
    tmp_path: Path, database_url: str
) -> None:
    # A long key cache keeps MAIL on the cached "active"; the pipeline reads the tenant itself.
    async with submission_appliance(tmp_path, database_url, api_key_cache_ttl=3600) as sub:
        smtp = await sub.run(sub.login)
        try:
            await sub.app.ctx.store.tenants.set_status(sub.tenant_id, "suspended", "by operator")
            code, text = await sub.run(lambda: transaction(smtp, ["a@example.org"], simple_mail()))
        finally:
            smtp.close()
    assert code == 521
    assert text.startswith("5.7.1 Sending is suspended for this account")
    assert "by operator" in text


async def test_queue_full_is_451_4_4_2_and_http_503(tmp_path: Path, database_url: str) -> None:
    async with submission_appliance(tmp_path, database_url, max_queued_messages=1) as sub:

        def scenario() -> list[tuple[int, str]]:
            with sub.login() as smtp:
                return [transaction(smtp, ["a@example.org"], simple_mail()) for _ in range(2)]

        first, second = await sub.run(scenario)
        body = {
            "personalizations": [{"to": [{"email": "b@example.org"}]}],
            "from": {"email": FROM},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "x"}],
        }
        async with httpx.AsyncClient(base_url=sub.app.base_url, headers=sub.app.auth()) as http:
            r = await http.post("/v3/mail/send", json=body)
    queued_id(first)
    assert second[0] == 451
    assert second[1].startswith("4.4.2 Queue full: 1 messages are waiting")
    assert r.status_code == 503
    assert r.json()["errors"][0]["message"].startswith("Queue full")


async def test_rate_limit_is_451_4_7_1(tmp_path: Path, database_url: str) -> None:
    async with submission_appliance(
        tmp_path, database_url, api_rate_limit=2, api_rate_window=3600
    ) as sub:

        def scenario() -> list[tuple[int, str]]:
            with sub.login() as smtp:
                return [transaction(smtp, ["a@example.org"], simple_mail()) for _ in range(3)]

        replies = await sub.run(scenario)
    queued_id(replies[0])
    queued_id(replies[1])
    code, text = replies[2]
    assert code == 451
    assert text.startswith(
        "4.7.1 Rate limit exceeded: this API key may start 2 messages per 3600 s"
    )


async def test_message_that_cannot_be_sent_is_550_5_6_0(sub: Submission) -> None:
    no_subject = simple_mail().replace(b"Subject: Hello\r\n", b"")
    bad_api = b"X-SMTPAPI: {not json\r\n" + simple_mail()

    def scenario() -> list[tuple[int, str]]:
        with sub.login() as smtp:
            return [transaction(smtp, ["a@example.org"], data) for data in (no_subject, bad_api)]

    (code1, text1), (code2, text2) = await sub.run(scenario)
    assert (code1, code2) == (550, 550)
    assert text1.startswith("5.6.0 Message refused: the message has no Subject")
    assert text2.startswith("5.6.0 Message refused: the X-SMTPAPI header is not valid JSON")
    assert await sub.app.ctx.store.messages.count_by_status(sub.tenant_id) == {}
