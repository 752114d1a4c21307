"""Helpers for the tracking and unsubscribe-group tests: send, render, read events."""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from appliance.services.composer import Composer
from appliance.store.messages import Event
from tests.support.appliance import RunningAppliance

DOMAIN = "track.example.test"
FROM = f"news@{DOMAIN}"
HTML = (
    "<html><body><p>Hello</p>"
    '<a href="https://shop.example.com/sale?a=1&amp;b=2">Sale</a> '
    '<a href="mailto:help@track.example.test">Help</a> '
    '<a clicktracking=off href="https://shop.example.com/private">Private</a>'
    "</body></html>"
)


def mail_body(to: str, **extra: Any) -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": FROM},
        "subject": "Offers",
        "content": [
            {"type": "text/plain", "value": "Hello"},
            {"type": "text/html", "value": HTML},
        ],
        **extra,
    }


async def send(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """Send; the id of the (single) message it made."""
    r = await http.post("/v3/mail/send", json=body)
    assert r.status_code == 202, r.text
    listed = await http.get("/v3/messages", params={"x_message_id": r.headers["X-Message-Id"]})
    messages = listed.json()["messages"]
    assert len(messages) == 1
    return str(messages[0]["msg_id"])


async def rendered(app: RunningAppliance, message_id: str) -> EmailMessage:
    message = await app.ctx.store.messages.get(None, message_id)
    assert message is not None
    composed = await Composer(app.ctx).compose(message, now=time.time())
    parsed = email.message_from_bytes(composed.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def html_of(parsed: EmailMessage) -> str:
    part = parsed.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def path_of(url: str) -> str:
    """The path of one of our links (the configured base_url is not the test's port)."""
    return urlsplit(url).path


async def events_of(app: RunningAppliance, message_id: str, kind: str) -> list[Event]:
    return [e for e in await app.ctx.store.messages.events_for(message_id) if e.event_type == kind]


def unsubscribe_url(parsed: EmailMessage) -> str:
    header = str(parsed["List-Unsubscribe"])
    found = re.search(r"<(https?://[^>]+/t/u/[^>]+)>", header)
    assert found, header
    return found.group(1)
