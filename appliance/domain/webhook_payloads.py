"""What a webhook POSTs: a JSON array of events, in our format or SendGrid's. Pure.

``postyard`` format: each event as the API shows it (SPEC "Events",
``Event.payload()``). ``sendgrid`` format: SendGrid's Event Webhook objects
(sendgrid-compat.md §8.2), so existing SendGrid consumers work unchanged:
``email``, ``timestamp``, ``event``, ``sg_event_id``, ``sg_message_id``,
``smtp-id``, ``category``, custom args as top-level keys (reserved keys win),
and per event ``reason``, ``status``, ``response``, ``attempt`` (a string),
``type`` (bounce: ``bounce`` or ``blocked``), ``tls``, ``ip``, ``useragent``,
``url``, ``asm_group_id``. Events SendGrid has no name for (``requeued``,
``cancelled``, alerts) are left out of SendGrid-format batches.

The body is compact JSON followed by CRLF, like SendGrid's (§8.4): the
signature covers those exact bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

WebhookFormat = Literal["postyard", "sendgrid"]
FORMATS: tuple[WebhookFormat, ...] = get_args(WebhookFormat)

# Our event types SendGrid also has (same names); everything else is ours alone.
SENDGRID_EVENTS = (
    "processed",
    "dropped",
    "delivered",
    "deferred",
    "bounce",
    "open",
    "click",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
)
EVENT_TYPES = (*SENDGRID_EVENTS, "requeued", "cancelled", "webhook_disabled")
_WITH_SMTP_ID = frozenset({"processed", "dropped", "delivered", "deferred", "bounce"})
_WITHOUT_CATEGORY = frozenset({"group_unsubscribe", "group_resubscribe"})
_PASSED_THROUGH = ("ip", "useragent", "url", "asm_group_id", "url_offset")
_RESERVED = frozenset(
    {
        "email", "timestamp", "event", "sg_event_id", "sg_message_id", "smtp-id", "category",
        "reason", "status", "response", "attempt", "type", "tls", *_PASSED_THROUGH,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MessageOrigin:
    """What the message's send request said, for events that do not repeat it."""

    from_email: str | None = None
    category: Sequence[str] = ()
    custom_args: Mapping[str, Any] = field(default_factory=dict)


def encode_batch(items: Sequence[Mapping[str, Any]]) -> bytes:
    """Compact JSON array + CRLF: the exact bytes POSTed (and signed)."""
    return json.dumps(list(items), separators=(",", ":"), ensure_ascii=False).encode() + b"\r\n"


def sendgrid_event(
    payload: Mapping[str, Any], origin: MessageOrigin | None = None
) -> dict[str, Any] | None:
    """SendGrid's Event Webhook object for one event payload (None: SendGrid has no such event)."""
    kind = payload["event_type"]
    if kind not in SENDGRID_EVENTS:
        return None
    origin = origin or MessageOrigin()
    out: dict[str, Any] = {}
    custom = payload.get("custom_args") or origin.custom_args
    for key, value in custom.items():
        if key not in _RESERVED:
            out[str(key)] = value if isinstance(value, str) else json.dumps(value)
    message_id = payload.get("message_id")
    x_message_id = payload.get("x_message_id")
    out.update(
        email=payload.get("recipient_email"),
        timestamp=int(payload["timestamp"]),
        event=kind,
        sg_event_id=payload["event_id"],
    )
    if message_id:
        out["sg_message_id"] = f"{x_message_id}.{message_id}" if x_message_id else message_id
        if kind in _WITH_SMTP_ID and origin.from_email and "@" in origin.from_email:
            out["smtp-id"] = f"<{message_id}@{origin.from_email.rpartition('@')[2]}>"
    categories = payload.get("category") or list(origin.category)
    if categories and kind not in _WITHOUT_CATEGORY:
        out["category"] = categories[0] if len(categories) == 1 else list(categories)
    out.update(_per_event(kind, payload))
    for key in _PASSED_THROUGH:
        if payload.get(key) is not None:
            out[key] = payload[key]
    return out


def _per_event(kind: str, p: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if kind == "dropped":
        out["reason"] = p.get("reason_text") or p.get("reason") or "Dropped"
        out["status"] = p.get("status") or "5.0.0"
    elif kind == "delivered":
        if p.get("smtp_response"):
            out["response"] = p["smtp_response"]
        if p.get("tls") is not None:
            out["tls"] = 1 if p["tls"] else 0
    elif kind == "deferred":
        reason = p.get("reason") or p.get("smtp_response")
        if reason:
            out["reason"] = reason
        if p.get("smtp_response"):
            out["response"] = p["smtp_response"]
        if p.get("attempt") is not None:
            out["attempt"] = str(p["attempt"])
    elif kind == "bounce":
        # SendGrid: "bounce" for what lands on the bounce list, "blocked" for blocks.
        out["type"] = "blocked" if p.get("bounce_type") == "block" else "bounce"
        out["reason"] = p.get("smtp_response") or p.get("bounce_reason") or "Bounced"
        if p.get("status"):
            out["status"] = p["status"]
        if p.get("tls") is not None:
            out["tls"] = 1 if p["tls"] else 0
    return out


def batch_items(
    fmt: WebhookFormat,
    payloads: Sequence[Mapping[str, Any]],
    origins: Mapping[str, MessageOrigin] | None = None,
) -> list[dict[str, Any]]:
    """The array a webhook of format ``fmt`` receives for these event payloads."""
    if fmt == "postyard":
        return [dict(p) for p in payloads]
    origins = origins or {}
    items = []
    for p in payloads:
        item = sendgrid_event(p, origins.get(p.get("message_id") or ""))
        if item is not None:
            items.append(item)
    return items


def sample_payloads(tenant_id: str, now: float) -> list[dict[str, Any]]:
    """A fake batch for ``POST /v3/user/webhooks/{id}/test``: one processed, one delivered."""
    common = {
        "message_id": "msg_test",
        "recipient_email": "example@test.com",
        "tenant_id": tenant_id,
        "timestamp": int(now),
        "x_message_id": "test_x_message_id",
        "category": ["webhook test"],
        "test": True,
    }
    return [
        {"event_id": "evt_test_processed", "event_type": "processed", **common},
        {
            "event_id": "evt_test_delivered",
            "event_type": "delivered",
            "smtp_response": "250 2.0.0 OK (test)",
            "tls": True,
            **common,
        },
    ]
