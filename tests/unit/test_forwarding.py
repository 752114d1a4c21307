"""Reply forwarding's pure parts: the stored payload, the wire form, the envelope sender,
the plan, and which recipients the inbound server takes (never a relay)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.domain import srs
from appliance.domain.forwarding import (
    MAX_FORWARDS,
    ForwardPayload,
    ForwardPayloadError,
    decode_forward,
    forward_hops,
    forwarded_message,
    plan_forward,
    received_header,
    srs_sender,
)
from appliance.domain.message_status import MessageStatus
from appliance.services.forwarding import loop_refusal
from appliance.services.inbound import rcpt_refusal
from appliance.store.domains import ForwardingRoute

SECRET = b"s" * 32
NOW = 1_780_000_000.0
RAW = (
    b"From: Alice <alice@customer.example>\r\n"
    b"To: support@sender.test\r\n"
    b"Subject: =?utf-8?q?Re:_Caf=C3=A9?=\r\n"
    b"\r\n"
    b"Thanks!\r\n"
)
PAYLOAD = ForwardPayload(
    domain="sender.test",
    mail_from="alice@customer.example",
    recipients=("support@sender.test",),
    received="Received: from mx ([192.0.2.1])\r\n\tby postyard.test id req_x;\r\n\tx\r\n",
    raw=RAW,
)


def test_payload_round_trips_and_is_never_a_send_request() -> None:
    encoded = PAYLOAD.encode()
    assert decode_forward(json.loads(encoded)) == PAYLOAD
    send_body = {
        "personalizations": [{"to": [{"email": "x@example.org"}]}],
        "from": {"email": "app@sender.test"},
        "forward": json.loads(encoded)["forward"],  # unknown keys are ignored by mail/send
    }
    assert decode_forward(send_body) is None
    assert decode_forward([json.loads(encoded)]) is None


def test_damaged_payload_says_so() -> None:
    item = json.loads(PAYLOAD.encode())["forward"]
    for broken in ({**item, "raw": "not base64!"}, {**item, "rcpt": [1]}, {"domain": "x"}):
        with pytest.raises(ForwardPayloadError, match="forward payload is damaged"):
            decode_forward({"forward": broken})


def test_wire_form_prepends_marker_and_trace_and_keeps_the_original() -> None:
    data = forwarded_message(PAYLOAD)
    assert data.startswith(b"X-Postyard-Forwarded: sender.test\r\nReceived: from mx")
    assert data.endswith(RAW)
    assert forward_hops(data) == ["sender.test"]
    assert forward_hops(RAW) == []


def test_hops_are_counted_in_the_header_section_only() -> None:
    looped = b"x-postyard-forwarded: a.test\r\nX-Postyard-Forwarded:b.test\r\n" + RAW
    assert forward_hops(looped) == ["a.test", "b.test"]
    in_body = RAW + b"X-Postyard-Forwarded: quoted.test\r\n"
    assert forward_hops(in_body) == []


def test_loop_refusal_after_max_forwards() -> None:
    once_too_often = b"X-Postyard-Forwarded: a.test\r\n" * MAX_FORWARDS
    assert loop_refusal(once_too_often + RAW) is None
    refusal = loop_refusal(b"X-Postyard-Forwarded: a.test\r\n" + once_too_often + RAW)
    assert refusal is not None
    assert (refusal.code, str(refusal.enhanced)) == (550, "5.4.6")
    assert "a.test" in refusal.text and "forward_to" in refusal.text


def test_received_header_cannot_inject_fields() -> None:
    field = received_header(
        helo="evil\r\nBcc: x@example.org",
        peer_host="192.0.2.7",
        hostname="postyard.test",
        tls=True,
        request_id="req_1",
        now=NOW,
    )
    lines = field.split("\r\n")
    assert lines[0] == "Received: from evil??Bcc:?x?example.org ([192.0.2.7])"
    assert lines[1] == "\tby postyard.test with ESMTPS id req_1;"
    assert lines[2].startswith("\t") and lines[2].endswith("+0000")
    assert lines[3] == ""


def test_envelope_sender_is_srs_null_or_none() -> None:
    sender = srs_sender(
        "alice@customer.example", bounce_domain="bounces.sender.test", secret=SECRET, now=NOW
    )
    assert sender is not None and sender.endswith("=customer.example=alice@bounces.sender.test")
    assert srs.reverse(sender, secret=SECRET, now=NOW) == "alice@customer.example"
    for null in ("", "<>"):
        assert srs_sender(null, bounce_domain="b.test", secret=SECRET, now=NOW) == ""
    for odd in ("postmaster", '"a b"@customer.example', "a@[192.0.2.1]"):
        assert srs_sender(odd, bounce_domain="b.test", secret=SECRET, now=NOW) is None


def test_plan_is_one_queued_message_to_forward_to() -> None:
    plan = plan_forward(PAYLOAD, forward_to="team@inbox.example", request_id="req_1", now=NOW)
    (message,) = plan.messages
    assert message.recipient == "team@inbox.example"
    assert message.from_email == "alice@customer.example"
    assert message.subject == "Re: Café"
    assert message.status is MessageStatus.QUEUED and message.due_at == NOW
    (event,) = plan.events
    assert (event.event_type, event.message_id) == ("processed", message.id)
    assert event.data == {
        "x_message_id": "req_1",
        "forwarded": True,
        "original_recipients": ["support@sender.test"],
        "original_sender": "alice@customer.example",
    }
    bounce = ForwardPayload("sender.test", "", ("a@sender.test",), "Received: x\r\n", RAW)
    (message,) = plan_forward(bounce, forward_to="t@i.example", request_id="r", now=NOW).messages
    assert message.from_email == "alice@customer.example"  # the From header's address


BOUNCE_DOMAINS = frozenset({"bounces.sender.test", "bounces.quiet.test"})
ROUTES = {
    "sender.test": ForwardingRoute("sender.test", "tnt_a", "team@inbox.example", True),
    "quiet.test": ForwardingRoute("quiet.test", "tnt_a", None, True),
    "paused.test": ForwardingRoute("paused.test", "tnt_b", "b@inbox.example", False),
}


def test_rcpt_takes_forwarding_domains_and_refuses_the_rest() -> None:
    assert rcpt_refusal("support@sender.test", BOUNCE_DOMAINS, ROUTES) is None
    assert rcpt_refusal("Support@SENDER.test", BOUNCE_DOMAINS, ROUTES) is None
    assert rcpt_refusal("fbl@bounces.quiet.test", BOUNCE_DOMAINS, ROUTES) is None
    refusals = {
        address: rcpt_refusal(address, BOUNCE_DOMAINS, ROUTES)
        for address in (
            "someone@quiet.test",
            "someone@paused.test",
            "someone@example.org",
            "someone@sub.sender.test",
            "someone@sender.test.attacker.example",
            '"x@sender.test"@attacker.example',
            "someone%attacker.example",
            "sender.test",
        )
    }
    for address, refusal in refusals.items():
        assert refusal is not None, address
        assert (refusal.code, str(refusal.enhanced)) == (550, "5.7.1"), address
    assert "no forwarding address" in refusals["someone@quiet.test"].text  # type: ignore[union-attr]
    assert "not verified and active" in refusals["someone@paused.test"].text  # type: ignore[union-attr]
    assert "relay access denied" in refusals["someone@example.org"].text  # type: ignore[union-attr]


TAKEN = frozenset({"sender.test", *BOUNCE_DOMAINS})
_DOMAINS = st.one_of(
    st.sampled_from([*ROUTES, *BOUNCE_DOMAINS, "SENDER.TEST", "sub.sender.test"]),
    st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,2}\.(test|example|com)", fullmatch=True),
)


@given(st.emails(domains=_DOMAINS))
def test_only_addresses_at_a_forwarding_or_bounce_domain_are_taken(address: str) -> None:
    refusal = rcpt_refusal(address, BOUNCE_DOMAINS, ROUTES)
    local, _, domain = address.rpartition("@")
    routes_on = any(c in local for c in "%!@")  # percent hack, bang path: refused everywhere
    assert (refusal is None) == (domain.lower() in TAKEN and not routes_on), (address, refusal)
