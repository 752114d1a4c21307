"""Delivery reports from an external MTA's log agent (seed 002), as pure rules.

``POST /v3/events/ingest`` takes a list of reports about our messages, each
``{"message_id", "event", "timestamp", "smtp_response", "bounce_type", "mta"}``:

- ``delivered``: the message becomes DELIVERED, event ``delivered``. An
  agent repeating itself (a ``delivered`` from ingestion already there) is a
  duplicate. (Statistics count one delivery per message: ``stats_metrics``.)
- ``bounce``: the message becomes BOUNCED, event ``bounce``, and the
  recipient is suppressed, by the same rules as our own delivery
  (``delivery_outcome``): a 5xx reply is classified like one we received; a
  4xx reply or no reply means the MTA gave up retrying, a soft bounce; with
  no reply, ``bounce_type: "hard"`` makes it hard. A terminal bounce already
  recorded for the message (by us, a DSN or an earlier report) is a
  duplicate: nothing is recorded again.
- ``deferred``: accepted but not stored (seed 002: "by design").

Only a message that left us (SENDING, DEFERRED, DELIVERED; BOUNCED for a
duplicate bounce) takes a report; anything else is a per-item error.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from appliance.domain.delivery_outcome import (
    Attempt,
    DeliveryOutcome,
    Route,
    SuppressionEntry,
    failed,
    refused,
)
from appliance.domain.inbound_outcome import smtp_response_in
from appliance.domain.message_status import MessageStatus
from appliance.domain.retry_schedule import RetryPolicy
from appliance.protocols.smtp_reply import Reply

MAX_ITEMS: Final = 1000
EVENTS: Final = ("delivered", "bounce", "deferred")
BOUNCE_TYPES: Final = ("hard", "soft", "block")
_MAX_TEXT: Final = 2000
_NO_RETRIES: Final = RetryPolicy(max_retries=0)  # the MTA has already retried
_REPORTABLE: Final = frozenset(
    {MessageStatus.SENDING, MessageStatus.DEFERRED, MessageStatus.DELIVERED}
)
_REPLY_RE: Final = re.compile(r"^([245]\d\d)(?:[ -](.*))?$", re.DOTALL)


class ItemStatus(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    NOT_STORED = "accepted_not_stored"  # deferred: accepted by design, not kept
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Report:
    """One valid report from the agent."""

    index: int
    message_id: str
    event: str  # delivered | bounce | deferred
    timestamp: float | None
    smtp_response: str | None
    bounce_type: str | None
    mta: str | None


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    message_id: str | None
    status: ItemStatus
    event_id: str | None = None
    error: str | None = None
    field: str | None = None

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "message_id": self.message_id,
            "status": self.status.value,
        }
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.error is not None:
            out["error"] = {"message": self.error, "field": self.field}
        return out


@dataclass(frozen=True, slots=True)
class MessageFacts:
    id: str
    tenant_id: str
    recipient: str
    request_id: str
    status: MessageStatus


@dataclass(frozen=True, slots=True)
class Effect:
    """What a report does: an event (None: nothing stored) and maybe a status and suppression."""

    result: ItemStatus
    event_type: str | None = None
    event_data: dict[str, Any] = field(default_factory=dict)
    occurred_at: float | None = None
    new_status: MessageStatus | None = None
    last_reply: str | None = None
    error_message: str | None = None
    suppression: SuppressionEntry | None = None
    refusal: str | None = None


def parse_items(body: Any) -> list[Report | ItemResult]:
    """Each item of the body as a :class:`Report`, or an ERROR result saying what to fix.

    Raises ValueError when the body as a whole is not a list of 1..MAX_ITEMS.
    """
    if not isinstance(body, list):
        raise ValueError("the body must be a JSON array of event reports")
    if not body:
        raise ValueError("the body is an empty array; send at least one event report")
    if len(body) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} event reports per request, not {len(body)}")
    return [_parse_item(i, item) for i, item in enumerate(body)]


def _parse_item(index: int, item: Any) -> Report | ItemResult:
    if not isinstance(item, Mapping):
        return _error(index, None, "each event report must be a JSON object", None)
    message_id = item.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip():
        return _error(index, None, "message_id is required: our message id (msg_…)", "message_id")
    message_id = message_id.strip()
    event = item.get("event")
    if event not in EVENTS:
        return _error(
            index, message_id, f"event must be one of {', '.join(EVENTS)}, not {event!r}", "event"
        )
    timestamp = item.get("timestamp")
    if timestamp is not None and (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
        or timestamp < 0
    ):
        return _error(index, message_id, "timestamp must be a Unix time in seconds", "timestamp")
    texts: dict[str, str | None] = {}
    for name in ("smtp_response", "mta"):
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            return _error(index, message_id, f"{name} must be a string", name)
        texts[name] = value.strip()[:_MAX_TEXT] or None if isinstance(value, str) else None
    bounce_type = item.get("bounce_type")
    if bounce_type is not None and bounce_type not in BOUNCE_TYPES:
        return _error(
            index,
            message_id,
            f"bounce_type must be one of {', '.join(BOUNCE_TYPES)}, not {bounce_type!r}",
            "bounce_type",
        )
    return Report(
        index,
        message_id,
        event,
        float(timestamp) if timestamp is not None else None,
        texts["smtp_response"],
        bounce_type,
        texts["mta"],
    )


def _error(index: int, message_id: str | None, message: str, field_: str | None) -> ItemResult:
    return ItemResult(index, message_id, ItemStatus.ERROR, error=message, field=field_)


def parse_reply(text: str | None) -> Reply | None:
    """The SMTP reply in an agent's text: ``550 5.1.1 …``, or Postfix's ``… said: 550 …``."""
    if not text:
        return None
    found = text.strip() if _REPLY_RE.match(text.strip()) else smtp_response_in(text)
    if found is None:
        return None
    m = _REPLY_RE.match(" ".join(found.split()))
    if m is None:
        return None
    return Reply.from_lines(int(m.group(1)), [m.group(2) or ""])


def plan(
    report: Report,
    message: MessageFacts,
    existing: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    now: float,
) -> Effect:
    """What ``report`` does to ``message``; ``existing``: its events as (type, data)."""
    if report.event == "deferred":
        return Effect(ItemStatus.NOT_STORED)
    occurred = min(report.timestamp, now) if report.timestamp is not None else now
    has_bounce = any(t == "bounce" for t, _ in existing)
    if report.event == "bounce":
        if has_bounce:
            return Effect(ItemStatus.DUPLICATE)
        if message.status not in _REPORTABLE:
            return Effect(ItemStatus.ERROR, refusal=_not_reportable(message))
        outcome = _bounce_outcome(report, message, now=now)
        return Effect(
            ItemStatus.STORED,
            event_type="bounce",
            event_data=_with_source(outcome.event_data, report),
            occurred_at=occurred,
            new_status=MessageStatus.BOUNCED,
            last_reply=outcome.last_reply,
            error_message=f"reported by {report.mta or 'the MTA'}: {outcome.error_message}",
            suppression=outcome.suppression,
        )
    if any(t == "delivered" and d.get("source") == "ingest" for t, d in existing):
        return Effect(ItemStatus.DUPLICATE)
    if message.status is MessageStatus.BOUNCED or message.status not in _REPORTABLE:
        return Effect(ItemStatus.ERROR, refusal=_not_reportable(message))
    data = {
        "smtp_response": report.smtp_response,
        "x_message_id": message.request_id,
        "mx_host": None,
    }
    return Effect(
        ItemStatus.STORED,
        event_type="delivered",
        event_data=_with_source(data, report),
        occurred_at=occurred,
        new_status=MessageStatus.DELIVERED,
        last_reply=report.smtp_response,
        error_message=None,
    )


def _bounce_outcome(report: Report, message: MessageFacts, *, now: float) -> DeliveryOutcome:
    attempt = Attempt(message.id, message.tenant_id, message.recipient, message.request_id, 0)
    route = Route(mx_host=report.mta, ip=None, tls=False, relay=None)
    reply = parse_reply(report.smtp_response)
    rng = random.Random(0)  # no retry is scheduled: nothing random is used
    if reply is not None and reply.is_permanent():
        return refused(attempt, reply, route, policy=_NO_RETRIES, rng=rng, now=now)
    description = report.smtp_response or "the MTA reported a bounce without a reply"
    if reply is None and report.bounce_type == "hard":
        return failed(
            attempt, description, route, permanent=True, status="5.0.0",
            policy=_NO_RETRIES, rng=rng, now=now,
        )  # fmt: skip
    # A 4xx or no reply: the MTA retried and gave up, a soft bounce.
    if reply is not None:
        outcome = refused(attempt, reply, route, policy=_NO_RETRIES, rng=rng, now=now)
    else:
        outcome = failed(
            attempt, description, route, permanent=False, status="4.0.0",
            policy=_NO_RETRIES, rng=rng, now=now,
        )  # fmt: skip
    reason = f"the MTA gave up retrying; last reply: {description}"
    where = f" ({report.mta})" if report.mta else ""
    return dataclasses.replace(
        outcome,
        event_data={**outcome.event_data, "bounce_reason": reason},
        error_message=(
            f"the MTA{where} gave up retrying; its last reply was {description}. The message "
            "was not delivered; the address was added to the bounce list as a soft bounce; "
            "delete it from /v3/suppression/bounces once the cause has passed to send to it again"
        ),
        suppression=SuppressionEntry("bounces", reason, outcome.event_data.get("status")),
    )


def _with_source(data: Mapping[str, Any], report: Report) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "attempt"}
    metadata = dict(out.get("metadata") or {})
    metadata.update({"source": "ingest", "mta": report.mta})
    if report.bounce_type is not None:
        metadata["reported_bounce_type"] = report.bounce_type
    if report.timestamp is not None:
        metadata["reported_at"] = report.timestamp
    out["metadata"] = metadata
    out["source"] = "ingest"
    return out


def _not_reportable(message: MessageFacts) -> str:
    if message.status is MessageStatus.BOUNCED:
        return "the message has already bounced; a delivery report cannot change that"
    return (
        f"the message is {message.status.value}: it has not been handed to an MTA, "
        "so there is nothing to report yet"
    )
