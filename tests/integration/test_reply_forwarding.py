"""Reply forwarding end to end (seed 001): smtplib sends a reply to the inbound server,
the delivery engine relays it to the domain's ``forward_to`` at the scripted MX, DKIM-signed
by the domain with an SRS envelope sender. Never a relay for anybody else.
"""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import pytest
import trio

from appliance.domain import srs
from appliance.domain.message_status import MessageStatus
from appliance.net.dns import dkimpy_dnsfunc
from tests.support.delivery import DeliverySetup, delivery_setup
from tests.support.sending import verified_domain

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FORWARD_TO = "team@example.test"  # at the scripted MX
ORIGINAL_SENDER = "alice@customer.example"
REPLY = (
    b"From: Alice <alice@customer.example>\r\n"
    b"To: Sender Support <support@sender.test>\r\n"
    b"Subject: Re: Your order\r\n"
    b"Message-ID: <reply-1@customer.example>\r\n"
    b"In-Reply-To: <msg_01jab3cdefghjkmnpqrstvwxyz@sender.test>\r\n"
    b"\r\n"
    b"Thanks, it arrived.\r\n"
    b".leading dot survives\r\n"
)


@pytest.fixture
async def setup(tmp_path: Path, database_url: str) -> AsyncIterator[DeliverySetup]:
    async with delivery_setup(
        tmp_path, database_url, services=("http", "delivery", "inbound")
    ) as running:
        r = await running.http.patch(
            f"/api/admin/domains/{running.domain.id}",
            json={"forward_to": FORWARD_TO},
            headers=running.app.auth(),
        )
        assert r.status_code == 200, r.text
        assert r.json()["forward_to"] == FORWARD_TO
        yield running


def inbound_port(setup: DeliverySetup) -> int:
    return int(setup.app.ctx.listeners["inbound"].rpartition(":")[2])


def _transaction(
    port: int, mail_from: str, recipients: list[str], data: bytes
) -> tuple[dict[str, tuple[int, bytes]], tuple[int, bytes] | None]:
    """RCPT replies by recipient, and the reply to DATA (None when no recipient was taken)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("mx.customer.example")
        code, text = smtp.mail(mail_from)
        assert code == 250, text
        replies = {r: smtp.rcpt(r) for r in recipients}
        if not any(code == 250 for code, _ in replies.values()):
            return replies, None
        return replies, smtp.data(data)


async def send(
    setup: DeliverySetup, recipients: list[str], data: bytes = REPLY, mail_from: str = ""
) -> tuple[dict[str, tuple[int, bytes]], tuple[int, bytes] | None]:
    return await trio.to_thread.run_sync(
        _transaction, inbound_port(setup), mail_from or ORIGINAL_SENDER, recipients, data
    )


def request_id_in(reply: tuple[int, bytes] | None) -> str:
    assert reply is not None
    code, text = reply
    assert code == 250, text
    (found,) = re.findall(r"req_[0-9a-z]{26}", text.decode())
    return found


async def test_reply_is_forwarded_signed_with_an_srs_envelope(setup: DeliverySetup) -> None:
    replies, data_reply = await send(setup, ["support@sender.test"])

    assert replies["support@sender.test"][0] == 250
    x_id = request_id_in(data_reply)
    settled = await setup.wait_settled(x_id)
    message = settled[FORWARD_TO]
    assert message.status is MessageStatus.DELIVERED, message
    assert message.from_email == ORIGINAL_SENDER and message.subject == "Re: Your order"

    (received,) = await setup.mx.wait_received(1)
    assert received["rcpt_tos"] == [FORWARD_TO]
    envelope_from = received["mail_from"]
    assert envelope_from.startswith("SRS0=")
    assert envelope_from.endswith("=customer.example=alice@bounces.sender.test")
    secret = setup.app.ctx.secrets.derive("srs")
    assert srs.reverse(envelope_from, secret=secret, now=time.time()) == ORIGINAL_SENDER
    data = received["data"].encode("latin-1")
    assert data.endswith(REPLY)  # the original, byte for byte
    headers = data[: data.index(b"\r\n\r\n")].decode()
    assert "\r\nX-Postyard-Forwarded: sender.test\r\n" in headers
    assert re.search(r"\r\nReceived: from mx\.customer\.example \(\[127\.0\.0\.1\]\)\r\n", headers)
    assert f"with ESMTP id {x_id};" in headers
    pair = setup.dkim
    dnsfunc = dkimpy_dnsfunc({f"{pair.selector}._domainkey.sender.test": [pair.public_txt]})
    assert dkim.verify(data, dnsfunc=dnsfunc)
    assert b"d=sender.test" in data[: data.index(b"X-Postyard-Forwarded")]

    events = await setup.app.ctx.store.messages.events_for(message.id)
    assert [e.event_type for e in events] == ["processed", "delivered"]
    assert events[0].data == {
        "x_message_id": x_id,
        "forwarded": True,
        "original_recipients": ["support@sender.test"],
        "original_sender": ORIGINAL_SENDER,
    }


async def test_null_sender_is_forwarded_with_the_null_sender(setup: DeliverySetup) -> None:
    _, data_reply = await send(setup, ["support@sender.test"], mail_from="<>")

    settled = await setup.wait_settled(request_id_in(data_reply))
    assert settled[FORWARD_TO].status is MessageStatus.DELIVERED
    assert settled[FORWARD_TO].from_email == ORIGINAL_SENDER  # from the From header
    (received,) = await setup.mx.wait_received(1)
    assert received["mail_from"] == "<>"  # MAIL FROM:<>, as aiosmtpd records it


async def test_domain_without_forward_to_is_refused(setup: DeliverySetup) -> None:
    await verified_domain(setup.app, "quiet.test")

    replies, data_reply = await send(setup, ["support@quiet.test"])

    code, text = replies["support@quiet.test"]
    assert (code, text.split()[0]) == (550, b"5.7.1")
    assert b"no forwarding address" in text
    assert data_reply is None


async def test_relay_attempts_are_refused_and_only_forward_to_gets_mail(
    setup: DeliverySetup,
) -> None:
    outside = [
        "someone@example.test",  # a real destination: the scripted MX
        "someone@example.org",
        "someone@sub.sender.test",
        "someone@sender.test.attacker.example",
        '"someone@sender.test"@example.test',
        "someone%example.test@example.test",
    ]

    replies, data_reply = await send(setup, [*outside, "sales@sender.test"])

    for address in outside:
        code, text = replies[address]
        assert (code, text.split()[0]) == (550, b"5.7.1"), (address, text)
        assert b"relay access denied" in text
    x_id = request_id_in(data_reply)
    settled = await setup.wait_settled(x_id)
    assert list(settled) == [FORWARD_TO]
    (received,) = await setup.mx.wait_received(1)
    assert received["rcpt_tos"] == [FORWARD_TO]
    events = await setup.app.ctx.store.messages.events_for(settled[FORWARD_TO].id)
    assert events[0].data["original_recipients"] == ["sales@sender.test"]


async def test_a_message_looping_through_forwards_is_refused(setup: DeliverySetup) -> None:
    looped = b"X-Postyard-Forwarded: sender.test\r\n" * 4 + REPLY

    replies, data_reply = await send(setup, ["support@sender.test"], looped)

    assert replies["support@sender.test"][0] == 250
    assert data_reply is not None
    code, text = data_reply
    assert (code, text.split()[0]) == (550, b"5.4.6"), text
    assert b"forwarded 4 times" in text
    assert await setup.app.ctx.store.messages.count_by_status() == {}

    once_more = b"X-Postyard-Forwarded: other.test\r\n" * 3 + REPLY
    _, data_reply = await send(setup, ["support@sender.test"], once_more)
    settled = await setup.wait_settled(request_id_in(data_reply))
    assert settled[FORWARD_TO].status is MessageStatus.DELIVERED


async def test_a_bounce_to_the_srs_address_is_kept_as_a_report(setup: DeliverySetup) -> None:
    _, data_reply = await send(setup, ["support@sender.test"])
    await setup.wait_settled(request_id_in(data_reply))
    (received,) = await setup.mx.wait_received(1)
    srs_address = received["mail_from"]
    dsn = (
        b"From: MAILER-DAEMON@mx.customer.example\r\n"
        b"To: " + srs_address.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"\r\n"
        b"team@example.test: mailbox unavailable\r\n"
    )

    replies, data_reply = await trio.to_thread.run_sync(
        _transaction, inbound_port(setup), "<>", [srs_address], dsn
    )

    assert replies[srs_address][0] == 250
    assert data_reply is not None and data_reply[0] == 250, data_reply
    assert b"Report rpt_" in data_reply[1]
    (report,) = await setup.app.ctx.store.inbound_reports.list(limit=10)
    assert report.envelope_to == [srs_address] and not report.matched
    assert report.tenant_id == setup.app.init.tenant_id
    assert setup.mx.received() == [received]  # nothing relayed back
