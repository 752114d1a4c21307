"""Reply forwarding (seed 001): the stored form of a forwarded message, its plan, its wire form.

A sending domain whose ``forward_to`` is set and whose MX points at us gets
its replies forwarded there. The inbound server stores each received message
as a "send request" whose payload is :class:`ForwardPayload` (JSON,
``{"forward": {…}}``, the message bytes in base64) and plans one message to
``forward_to`` (:func:`plan_forward`); the delivery engine composes it like
any other (``services.composer``): :func:`forwarded_message` puts our trace
headers on top of the bytes as they came, the composer DKIM-signs them with
the forwarding domain's key and gives them the SRS envelope sender of
:func:`srs_sender`.

A mail/send body can never be mistaken for a forward payload: one needs
``personalizations`` and ``from``, the other has the ``forward`` key alone.

Loops: each forward adds ``X-Postyard-Forwarded: <domain>``; a message
already carrying it more than :data:`MAX_FORWARDS` times is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import Any, Final

from appliance.domain import srs
from appliance.domain.acceptance import AcceptancePlan, NewEvent, NewMessage
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.domain.ids import new_id
from appliance.domain.message_status import MessageStatus
from appliance.protocols.bounce_mime import header, load
from appliance.protocols.smtp_client_message import header_section

FORWARDED_HEADER: Final = "X-Postyard-Forwarded"
MAX_FORWARDS: Final = 3
"""A message already forwarded more often than this by Postyard is a loop."""
MAX_ADDRESS: Final = 320  # messages.from_email / recipient columns
_FORWARDED_RE: Final = re.compile(rb"^x-postyard-forwarded[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_TRACE_TOKEN_RE: Final = re.compile(r"[^A-Za-z0-9.:\-\[\]_]")


class ForwardPayloadError(ValueError):
    """A stored forward payload is damaged (the text says which part)."""


@dataclass(frozen=True, slots=True)
class ForwardPayload:
    """One received message to forward, as stored in ``send_requests.payload``."""

    domain: str  # the sending domain the message was addressed to
    mail_from: str  # the original envelope sender; "" is the null sender
    recipients: tuple[str, ...]  # the original envelope recipients at ``domain``
    received: str  # our Received: header field (CRLF-ended), made when it arrived
    raw: bytes  # the message as received, CRLF line ends

    def encode(self) -> bytes:
        body = {
            "forward": {
                "domain": self.domain,
                "mail_from": self.mail_from,
                "rcpt": list(self.recipients),
                "received": self.received,
                "raw": base64.b64encode(self.raw).decode("ascii"),
            }
        }
        return json.dumps(body, separators=(",", ":")).encode("ascii")


def decode_forward(body: object) -> ForwardPayload | None:
    """The forward payload in a decoded stored payload; None for a mail/send body."""
    if not isinstance(body, dict) or set(body) != {"forward"}:
        return None
    item = body["forward"]
    try:
        return ForwardPayload(
            domain=_text(item, "domain"),
            mail_from=_text(item, "mail_from"),
            recipients=tuple(_text({"r": r}, "r") for r in item["rcpt"]),
            received=_text(item, "received"),
            raw=base64.b64decode(_text(item, "raw"), validate=True),
        )
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ForwardPayloadError(f"the stored forward payload is damaged ({exc!r})") from None


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def forward_hops(raw: bytes) -> list[str]:
    """The values of the ``X-Postyard-Forwarded`` fields in the message's header section."""
    return [
        m.decode("ascii", "replace").strip() for m in _FORWARDED_RE.findall(header_section(raw))
    ]


def received_header(
    *,
    helo: str | None,
    peer_host: str,
    hostname: str,
    tls: bool,
    request_id: str,
    now: float,
) -> str:
    """``Received: from <helo> ([<ip>]) by <us> with ESMTP(S) id <req>; <date>``, CRLF-ended.

    The HELO name is the client's word: anything but host-name characters is
    replaced, so it can neither fold nor inject a header.
    """
    helo_name = _TRACE_TOKEN_RE.sub("?", helo or "unknown")[:255] or "unknown"
    peer = _TRACE_TOKEN_RE.sub("?", peer_host)
    hostname = _TRACE_TOKEN_RE.sub("?", hostname)
    protocol = "ESMTPS" if tls else "ESMTP"
    date = format_datetime(datetime.fromtimestamp(now, UTC))
    return (
        f"Received: from {helo_name} ([{peer}])\r\n\tby {hostname} with {protocol} "
        f"id {request_id};\r\n\t{date}\r\n"
    )


def forwarded_message(payload: ForwardPayload) -> bytes:
    """The bytes to sign and send: our loop marker and trace field, then the original."""
    marker = f"{FORWARDED_HEADER}: {payload.domain}\r\n"
    return marker.encode("ascii") + payload.received.encode("ascii") + payload.raw


def srs_sender(mail_from: str, *, bounce_domain: str, secret: bytes, now: float) -> str | None:
    """The envelope sender of the forward: ``""`` stays ``""``; a valid address becomes
    its SRS0 form at ``bounce_domain``; None when it cannot be rewritten (no address
    or a quoted local part), so the caller uses its own bounce address instead."""
    if mail_from in srs.NULL_SENDERS:
        return ""
    try:
        address = parse_address(mail_from)
    except InvalidAddressError:
        return None
    if address.local_part.startswith('"'):
        return None  # "a b"@x would give SRS0=…="a b"@us: not an address
    return srs.forward(str(address), our_domain=bounce_domain, secret=secret, now=now)


def original_sender(raw: bytes, mail_from: str) -> str:
    """Who the forwarded message is from, for the message list: the envelope sender,
    or the From header's address for the null sender."""
    if mail_from:
        return mail_from[:MAX_ADDRESS]
    _, address = parseaddr(header(load(header_section(raw)), "From"))
    return address[:MAX_ADDRESS]


def subject_of(raw: bytes) -> str | None:
    return header(load(header_section(raw)), "Subject").strip() or None


def plan_forward(
    payload: ForwardPayload, *, forward_to: str, request_id: str, now: float
) -> AcceptancePlan:
    """One QUEUED message to ``forward_to`` and its ``processed`` event.

    The suppression lists are not consulted: ``forward_to`` is the tenant's
    own mailbox, which it chose for exactly this mail.
    """
    message_id = new_id("msg", now=now)
    message = NewMessage(
        id=message_id,
        personalization=0,
        recipient=forward_to,
        from_email=original_sender(payload.raw, payload.mail_from),
        subject=subject_of(payload.raw),
        status=MessageStatus.QUEUED,
        due_at=now,
        error_message=None,
    )
    event = NewEvent(
        id=new_id("evt", now=now),
        message_id=message_id,
        event_type="processed",
        recipient=forward_to,
        data={
            "x_message_id": request_id,
            "forwarded": True,
            "original_recipients": list(payload.recipients),
            "original_sender": payload.mail_from,
        },
    )
    return AcceptancePlan(request_id, (message,), (event,))
