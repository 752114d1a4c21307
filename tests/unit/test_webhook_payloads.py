"""Webhook payloads: our format as is, SendGrid's Event Webhook objects (compat §8.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.domain.webhook_payloads import (
    MessageOrigin,
    batch_items,
    encode_batch,
    sample_payloads,
    sendgrid_event,
)

BASE: dict[str, Any] = {
    "event_id": "evt_1",
    "timestamp": 1700000000,
    "message_id": "msg_1",
    "recipient_email": "rcpt@example.test",
    "tenant_id": "tnt_1",
    "x_message_id": "XID",
}
ORIGIN = MessageOrigin("from@mail.example.test", ("news",), {"order": "42", "email": "spoof"})
COMMON = {
    "email": "rcpt@example.test",
    "timestamp": 1700000000,
    "sg_event_id": "evt_1",
    "sg_message_id": "XID.msg_1",
}
SMTP_ID = {"smtp-id": "<msg_1@mail.example.test>"}

CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"event_type": "processed", "category": ["a", "b"], "custom_args": {"k": "v"}},
        {"event": "processed", "category": ["a", "b"], "k": "v", **SMTP_ID},
    ),
    (
        {"event_type": "dropped", "reason": "suppressed_bounce", "reason_text": "Bounced Address"},
        {
            "event": "dropped",
            "reason": "Bounced Address",
            "status": "5.0.0",
            "category": "news",
            "order": "42",
            **SMTP_ID,
        },
    ),
    (
        {
            "event_type": "delivered",
            "smtp_response": "250 2.0.0 OK",
            "tls": True,
            "ip": "192.0.2.1",
        },
        {
            "event": "delivered",
            "response": "250 2.0.0 OK",
            "tls": 1,
            "ip": "192.0.2.1",
            "category": "news",
            "order": "42",
            **SMTP_ID,
        },
    ),
    (
        {
            "event_type": "deferred",
            "smtp_response": "451 4.7.1 later",
            "reason": "try later",
            "attempt": 3,
        },
        {
            "event": "deferred",
            "reason": "try later",
            "response": "451 4.7.1 later",
            "attempt": "3",
            "category": "news",
            "order": "42",
            **SMTP_ID,
        },
    ),
    (
        {
            "event_type": "bounce",
            "bounce_type": "hard",
            "smtp_response": "550 5.1.1 unknown",
            "status": "5.1.1",
        },
        {
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 unknown",
            "status": "5.1.1",
            "category": "news",
            "order": "42",
            **SMTP_ID,
        },
    ),
    (
        {
            "event_type": "bounce",
            "bounce_type": "block",
            "bounce_reason": "blocked",
            "status": "5.7.1",
        },
        {
            "event": "bounce",
            "type": "blocked",
            "reason": "blocked",
            "status": "5.7.1",
            "category": "news",
            "order": "42",
            **SMTP_ID,
        },
    ),
    (
        {"event_type": "click", "url": "https://x.test/", "useragent": "UA", "ip": "192.0.2.9"},
        {
            "event": "click",
            "url": "https://x.test/",
            "useragent": "UA",
            "ip": "192.0.2.9",
            "category": "news",
            "order": "42",
        },
    ),
    (
        {"event_type": "spamreport"},
        {"event": "spamreport", "category": "news", "order": "42"},
    ),
    (
        {"event_type": "group_unsubscribe", "asm_group_id": 10},
        {"event": "group_unsubscribe", "asm_group_id": 10, "order": "42"},
    ),
]


@pytest.mark.parametrize(("event", "expected"), CASES, ids=[c[0]["event_type"] for c in CASES])
def test_sendgrid_objects(event: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sendgrid_event({**BASE, **event}, ORIGIN) == {**COMMON, **expected}


def test_reserved_keys_win_over_custom_args() -> None:
    item = sendgrid_event({**BASE, "event_type": "processed"}, ORIGIN)
    assert item is not None and item["email"] == "rcpt@example.test"


@pytest.mark.parametrize("kind", ["requeued", "cancelled", "webhook_disabled"])
def test_events_sendgrid_does_not_know_are_left_out(kind: str) -> None:
    assert sendgrid_event({**BASE, "event_type": kind}) is None
    assert batch_items("sendgrid", [{**BASE, "event_type": kind}]) == []
    assert batch_items("postyard", [{**BASE, "event_type": kind}]) == [{**BASE, "event_type": kind}]


def test_without_origin_or_x_message_id() -> None:
    event = {**BASE, "event_type": "processed", "x_message_id": None}
    assert sendgrid_event(event) == {
        "email": "rcpt@example.test",
        "timestamp": 1700000000,
        "event": "processed",
        "sg_event_id": "evt_1",
        "sg_message_id": "msg_1",
    }


def test_batch_body_is_compact_json_with_crlf() -> None:
    body = encode_batch(batch_items("sendgrid", sample_payloads("tnt_1", 1700000000)))
    assert body.endswith(b"]\r\n") and b", " not in body and b": " not in body
    items = json.loads(body)
    assert [i["event"] for i in items] == ["processed", "delivered"]
    assert items[0]["category"] == "webhook test"
