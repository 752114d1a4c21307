"""What one delivery attempt means for its message: row update, event, suppression.

The store applies a :class:`DeliveryOutcome` as it is (``store.queue``); the
functions that decide it from an SMTP reply or a connection failure are pure
and live here, so the rules can be read and tested in one place:

- 2xx: DELIVERED, event ``delivered``.
- 4xx, or no reply for a transient reason (connection refused, timeout, TLS):
  DEFERRED until the retry schedule's next step (``retry_schedule``), event
  ``deferred``; once retries are exhausted, BOUNCED as a soft bounce.
- 5xx, or no reply for a permanent reason (null MX, no such domain): BOUNCED,
  event ``bounce`` with the class from ``bounce_classification``; a hard
  bounce puts the recipient on the ``bounces`` list, a block on ``blocks``.

Whether a refusal also asks us to slow down is ``throttling.is_throttling``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Final

from appliance.domain.bounce_classification import (
    BounceClass,
    classify_failure,
    classify_reply,
    is_greylisting,
)
from appliance.domain.message_status import MessageStatus
from appliance.domain.retry_schedule import RetryPolicy
from appliance.domain.throttling import is_throttling
from appliance.protocols.smtp_reply import EnhancedStatus, Reply

__all__ = [
    "Attempt",
    "DeliveryOutcome",
    "Route",
    "SuppressionEntry",
    "delivered",
    "failed",
    "is_throttling",  # re-exported: the delivery service reads every reply rule from here
    "refused",
    "status_of",
]


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    """A recipient to add to a suppression list because of an outcome."""

    list_name: str  # bounces | blocks | spam_reports | invalid_emails | unsubscribes
    reason: str
    status: str | None  # enhanced status code, e.g. "5.1.1"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    message_id: str
    tenant_id: str
    recipient: str
    status: MessageStatus  # DELIVERED | DEFERRED | BOUNCED
    attempts: int  # delivery attempts made, this one included
    due_at: float | None  # the next attempt, for DEFERRED
    last_reply: str | None  # the SMTP reply (or our description of the failure)
    error_message: str | None  # a sentence for the message page; None when delivered
    event_type: str  # delivered | deferred | bounce
    event_data: dict[str, Any]  # the event payload beyond the common fields
    suppression: SuppressionEntry | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """The message a delivery attempt is for, as plain values (not a store row)."""

    message_id: str
    tenant_id: str
    recipient: str
    x_message_id: str  # the send request id: the X-Message-Id the API answered
    attempts_before: int  # attempts made before this one

    def __post_init__(self) -> None:
        if self.attempts_before < 0:
            raise ValueError(f"attempts_before must be 0 or more, not {self.attempts_before}")

    @property
    def number(self) -> int:
        """This attempt's number, counting from 1."""
        return self.attempts_before + 1


@dataclass(frozen=True, slots=True)
class Route:
    """Where an attempt went."""

    mx_host: str | None  # the host that answered: an MX host, or the relay's host
    ip: str | None  # our source address, when one was chosen
    tls: bool  # whether the session was encrypted
    relay: str | None  # the relay's name, when sent through a smart host

    def describe(self) -> str | None:
        """The answering host in words, for sentences: ``mx.example.com``."""
        if self.relay is not None:
            return f"relay {self.relay}" + (f" ({self.mx_host})" if self.mx_host else "")
        return self.mx_host


# What a bounce means, by enhanced status, for the message page. An entry is
# used only when the classifier agrees with its class (a "5.1.1 over quota"
# is SOFT and must not be explained as a missing mailbox).
_STATUS_MEANING: Final[dict[str, tuple[BounceClass, str]]] = {
    "5.1.1": (BounceClass.HARD, "the mailbox does not exist"),
    "5.1.2": (BounceClass.HARD, "the recipient's domain does not exist"),
    "5.1.6": (BounceClass.HARD, "the mailbox has moved"),
    "5.1.10": (BounceClass.HARD, "the recipient's domain accepts no mail (null MX)"),
    "5.2.1": (BounceClass.HARD, "the mailbox is disabled"),
    "5.2.2": (BounceClass.SOFT, "the mailbox is full"),
    "5.2.3": (BounceClass.SOFT, "the message is too large for the mailbox"),
    "5.3.4": (BounceClass.SOFT, "the message is too large for the receiving system"),
    "5.4.4": (BounceClass.HARD, "the recipient's domain cannot be routed"),
    "5.7.1": (BounceClass.BLOCK, "the receiver refused the message by policy"),
    "5.7.26": (BounceClass.BLOCK, "the message failed the receiver's DMARC checks"),
}
_CLASS_MEANING: Final[dict[BounceClass, str]] = {
    BounceClass.HARD: "the recipient address cannot receive mail",
    BounceClass.SOFT: "the receiver refused this message for a reason that may pass",
    BounceClass.BLOCK: "the receiver refused mail from us (policy, reputation or content)",
}
# What a bounce does to the recipient, and what the sender can do about it.
_CLASS_CONSEQUENCE: Final[dict[BounceClass, tuple[str | None, str]]] = {
    BounceClass.HARD: (
        "bounces",
        "the address was added to the bounce list; check it, and delete it from "
        "/v3/suppression/bounces to send to it again",
    ),
    BounceClass.BLOCK: (
        "blocks",
        "the address was added to the blocks list; check the sending domain's SPF, DKIM and "
        "DMARC records and the sending address's reputation, then delete it from "
        "/v3/suppression/blocks to try again",
    ),
    # Seed 003: soft bounces go on the bounce list too, by default; the operator
    # deletes the address once the cause (a full mailbox...) has passed.
    BounceClass.SOFT: (
        "bounces",
        "the address was added to the bounce list as a soft bounce; delete it from "
        "/v3/suppression/bounces once the cause has passed to send to it again",
    ),
}


def delivered(attempt: Attempt, reply: Reply, route: Route, *, now: float) -> DeliveryOutcome:
    """The receiver accepted the message (a 2xx reply to the end of DATA).

    ``now`` is taken for a signature like the others'; the store stamps the event.
    """
    del now
    if reply.code // 100 != 2:
        raise ValueError(f"delivered() needs a 2xx reply, not {reply}")
    return DeliveryOutcome(
        message_id=attempt.message_id,
        tenant_id=attempt.tenant_id,
        recipient=attempt.recipient,
        status=MessageStatus.DELIVERED,
        attempts=attempt.number,
        due_at=None,
        last_reply=str(reply),
        error_message=None,
        event_type="delivered",
        event_data={
            "smtp_response": str(reply),
            "mx_host": route.mx_host,
            "ip": route.ip,
            "tls": route.tls,
            "relay": route.relay,
            "attempt": attempt.number,
            "x_message_id": attempt.x_message_id,
        },
    )


def refused(
    attempt: Attempt,
    reply: Reply,
    route: Route,
    *,
    policy: RetryPolicy,
    rng: random.Random,
    now: float,
) -> DeliveryOutcome:
    """The receiver refused this recipient or message: 4xx defers (or, retries
    exhausted, soft-bounces), 5xx bounces as the classifier says."""
    if reply.is_transient():
        greylisted = is_greylisting(reply)
        delay = policy.next_delay(attempt.number, greylisting=greylisted, rng=rng)
        if delay is None:
            return _exhausted(
                attempt,
                route,
                reply=reply,
                description=str(reply),
                status=status_of(reply),
                policy=policy,
            )
        due_at = now + delay
        if greylisted:
            why = "greylisting: the server turns away a first attempt from a new sender"
        else:
            why = "the server refused the message for now"
        return _deferred(
            attempt,
            route,
            due_at=due_at,
            smtp_response=str(reply),
            reason=reply.text or str(reply),
            greylisted=greylisted,
            error_message=f"{_said(reply, route)}: {why}; {_next(attempt, policy, due_at)}",
        )
    if not reply.is_permanent():
        raise ValueError(f"refused() needs a 4xx or 5xx reply, not {reply}")
    klass = classify_reply(reply)
    status = status_of(reply)
    list_name, advice = _CLASS_CONSEQUENCE[klass]
    return _bounced(
        attempt,
        route,
        bounce_type=klass.value,
        bounce_reason=reply.text or str(reply),
        smtp_response=str(reply),
        status=status,
        diagnostic_code=f"smtp; {reply}",
        last_reply=str(reply),
        error_message=f"{_said(reply, route)}: {_meaning(status, klass)}; {advice}",
        suppression=(
            SuppressionEntry(list_name, str(reply), status) if list_name is not None else None
        ),
    )


def failed(
    attempt: Attempt,
    description: str,
    route: Route | None,
    *,
    permanent: bool,
    status: str,
    policy: RetryPolicy,
    rng: random.Random,
    now: float,
) -> DeliveryOutcome:
    """An attempt that got no SMTP reply for the recipient.

    Transient (connection refused or timed out, TLS failure, DNS timeout:
    ``status`` 4.x.x) defers like a 4xx; permanent (null MX, no such domain,
    message too large: ``status`` 5.x.x) bounces, classified by ``status``
    alone since we chose it. ``description`` is our sentence for what happened.
    """
    parsed = EnhancedStatus.parse(status)
    if parsed is None:
        raise ValueError(f"status must be an enhanced status code like '4.4.1', not {status!r}")
    if parsed.klass != (5 if permanent else 4):
        kind = "permanent" if permanent else "transient"
        raise ValueError(
            f"a {kind} failure needs a {5 if permanent else 4}.x.x status, not {status}"
        )
    if not permanent:
        delay = policy.next_delay(attempt.number, greylisting=False, rng=rng)
        if delay is None:
            return _exhausted(
                attempt, route, reply=None, description=description, status=status, policy=policy
            )
        due_at = now + delay
        return _deferred(
            attempt,
            route,
            due_at=due_at,
            smtp_response=None,
            reason=description,
            greylisted=False,
            error_message=f"{description}; {_next(attempt, policy, due_at)}",
        )
    klass = classify_failure(None, parsed)
    list_name, advice = _CLASS_CONSEQUENCE[klass]
    return _bounced(
        attempt,
        route,
        bounce_type=klass.value,
        bounce_reason=description,
        smtp_response=None,
        status=status,
        diagnostic_code=f"X-Postyard; {description}",
        last_reply=description,
        error_message=f"{description} ({status}); {advice}",
        suppression=(
            SuppressionEntry(list_name, description, status) if list_name is not None else None
        ),
    )


def status_of(reply: Reply) -> str:
    """The reply's enhanced status, or one derived from its class (``550`` -> ``5.0.0``)."""
    if reply.enhanced is not None:
        return str(reply.enhanced)
    return f"{reply.code // 100}.0.0"


def _exhausted(
    attempt: Attempt,
    route: Route | None,
    *,
    reply: Reply | None,
    description: str,
    status: str,
    policy: RetryPolicy,
) -> DeliveryOutcome:
    """Still failing after the last retry: a soft bounce (on the bounce list, seed 003)."""
    n = attempt.number
    what = "reply" if reply is not None else "error"
    where = _from(route)
    if policy.max_retries == 0:
        reason = f"retries exhausted: no retries are configured; last {what}: {description}"
    else:
        reason = f"retries exhausted after {n} attempts; last {what}: {description}"
    return _bounced(
        attempt,
        route,
        bounce_type=BounceClass.SOFT.value,
        bounce_reason=reason,
        smtp_response=str(reply) if reply is not None else None,
        status=status,
        diagnostic_code=f"smtp; {reply}" if reply is not None else f"X-Postyard; {description}",
        last_reply=description,
        error_message=(
            f"gave up after {n} attempt{'s' if n != 1 else ''}; the last {what} was "
            f"{description}{where}. The message was not delivered; "
            f"{_CLASS_CONSEQUENCE[BounceClass.SOFT][1]}"
        ),
        suppression=SuppressionEntry("bounces", reason, status),
    )


def _deferred(
    attempt: Attempt,
    route: Route | None,
    *,
    due_at: float,
    smtp_response: str | None,
    reason: str,
    greylisted: bool,
    error_message: str,
) -> DeliveryOutcome:
    return DeliveryOutcome(
        message_id=attempt.message_id,
        tenant_id=attempt.tenant_id,
        recipient=attempt.recipient,
        status=MessageStatus.DEFERRED,
        attempts=attempt.number,
        due_at=due_at,
        last_reply=smtp_response if smtp_response is not None else reason,
        error_message=error_message,
        event_type="deferred",
        event_data={
            "attempt": attempt.number,
            "smtp_response": smtp_response,
            "reason": reason,
            "next_attempt_at": int(due_at),
            "greylisted": greylisted,
            "mx_host": route.mx_host if route is not None else None,
            "x_message_id": attempt.x_message_id,
        },
    )


def _bounced(
    attempt: Attempt,
    route: Route | None,
    *,
    bounce_type: str,
    bounce_reason: str,
    smtp_response: str | None,
    status: str,
    diagnostic_code: str,
    last_reply: str,
    error_message: str,
    suppression: SuppressionEntry | None,
) -> DeliveryOutcome:
    # As in the SPEC's event example: for a refusal in the SMTP session the
    # remote MTA is also the one reporting it (a DSN would name its own).
    metadata: dict[str, str] = {"diagnostic_code": diagnostic_code}
    if route is not None and route.mx_host:
        metadata["remote_mta"] = f"dns; {route.mx_host}"
        metadata["reporting_mta"] = f"dns; {route.mx_host}"
    return DeliveryOutcome(
        message_id=attempt.message_id,
        tenant_id=attempt.tenant_id,
        recipient=attempt.recipient,
        status=MessageStatus.BOUNCED,
        attempts=attempt.number,
        due_at=None,
        last_reply=last_reply,
        error_message=error_message,
        event_type="bounce",
        event_data={
            "bounce_type": bounce_type,
            "bounce_reason": bounce_reason,
            "smtp_response": smtp_response,
            "status": status,
            "attempt": attempt.number,
            "mx_host": route.mx_host if route is not None else None,
            "x_message_id": attempt.x_message_id,
            "metadata": metadata,
        },
        suppression=suppression,
    )


def _said(reply: Reply, route: Route | None) -> str:
    """``550 5.1.1 from mx.example.com``: the reply's codes and who sent them."""
    codes = f"{reply.code} {reply.enhanced}" if reply.enhanced is not None else str(reply.code)
    host = route.describe() if route is not None else None
    return f"{codes} from {host}" if host else codes


def _from(route: Route | None) -> str:
    host = route.describe() if route is not None else None
    return f" (from {host})" if host else ""


def _meaning(status: str, klass: BounceClass) -> str:
    known = _STATUS_MEANING.get(status)
    if known is not None and known[0] is klass:
        return known[1]
    return _CLASS_MEANING[klass]


def _next(attempt: Attempt, policy: RetryPolicy, due_at: float) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(due_at))
    return (
        f"attempt {attempt.number} of {policy.max_attempts}; the next one is at {when} UTC "
        "(nothing to do unless it keeps failing)"
    )
