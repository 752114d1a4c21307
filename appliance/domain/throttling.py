"""Whether a refusal asks us to slow down for the whole destination.

A destination that says "slow down" (too many connections, a rate limit)
should be backed off as a whole (``destination_backoff``), not just have the
one message retried: every other message to it would meet the same refusal.
Most transient refusals are not that: greylisting refuses one new sender
once, a full mailbox or a per-recipient rate concerns one address, "too many
recipients" one transaction. Those are left to the message's own retries.

The rules are one table, read top down; the first rule that applies decides
(``THROTTLE_RULES``); a reply no rule matches is not throttling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from appliance.domain.bounce_classification import is_greylisting
from appliance.protocols.smtp_reply import Reply

# Words a server uses to say we send too much or too fast.
_RATE_WORDING: Final = re.compile(
    r"too many (?:connections|concurrent|sessions|simultaneous|messages|mails?|emails?|requests)"
    r"|rate.?limit|slow(?:ing)? down|throttl|too fast|unusual rate|unexpected volume"
    r"|(?:sending|message|connection|delivery) rate|exceed\w* .{0,30}\brate\b|server (?:is )?busy",
    re.IGNORECASE,
)
# Vaguer words, trusted only with a status code that already points at us.
_LATER_WORDING: Final = re.compile(r"try again later|retry later|please try again", re.IGNORECASE)
_TOO_MANY_RECIPIENTS: Final = re.compile(r"too many (?:recipients|rcpt)", re.IGNORECASE)


def _status(reply: Reply) -> tuple[int, int, int] | None:
    e = reply.enhanced
    return (e.klass, e.subject, e.detail) if e is not None else None


def _not_transient(reply: Reply) -> bool:
    return not reply.is_transient()


def _closing(reply: Reply) -> bool:
    return reply.code == 421


def _too_many_recipients(reply: Reply) -> bool:
    return _status(reply) == (4, 5, 3) or bool(_TOO_MANY_RECIPIENTS.search(reply.text))


def _about_one_mailbox(reply: Reply) -> bool:
    return reply.enhanced is not None and reply.enhanced.subject == 2


def _ip_rate_limit(reply: Reply) -> bool:
    return _status(reply) == (4, 7, 28)


def _rate_wording(reply: Reply) -> bool:
    policy = reply.enhanced is not None and reply.enhanced.subject == 7
    return (policy or reply.code in (450, 451, 452)) and bool(_RATE_WORDING.search(reply.text))


def _later_with_security_status(reply: Reply) -> bool:
    return _status(reply) == (4, 7, 0) and bool(_LATER_WORDING.search(reply.text))


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """One row: when ``applies`` holds, ``throttling`` is the answer."""

    applies: Callable[[Reply], bool]
    throttling: bool
    why: str


THROTTLE_RULES: Final[tuple[ThrottleRule, ...]] = (
    ThrottleRule(_not_transient, False, "only a transient (4xx) reply asks us to come back later"),
    ThrottleRule(
        is_greylisting,
        False,
        "greylisting refuses a new sender once; the message's short first retry answers it",
    ),
    ThrottleRule(
        _closing,
        True,
        "421: the server is closing the session (RFC 5321 §3.8), mostly from load or limits",
    ),
    ThrottleRule(
        _too_many_recipients,
        False,
        "too many recipients (4.5.3) limits one transaction, not the destination",
    ),
    ThrottleRule(
        _about_one_mailbox,
        False,
        "4.2.x concerns one mailbox (e.g. 4.2.1 'receiving mail at a rate'), not the destination",
    ),
    ThrottleRule(_ip_rate_limit, True, "4.7.28: the sending address is rate limited (Gmail)"),
    ThrottleRule(
        _rate_wording,
        True,
        "a 4.7.x status or 450/451/452 that names a rate or too many connections/messages",
    ),
    ThrottleRule(
        _later_with_security_status, True, "4.7.0 with 'try again later': a policy deferral"
    ),
)


def throttle_rule(reply: Reply) -> ThrottleRule | None:
    """The rule that decides ``reply``, or None when none applies (not throttling)."""
    for rule in THROTTLE_RULES:
        if rule.applies(reply):
            return rule
    return None


def is_throttling(reply: Reply) -> bool:
    """Whether ``reply`` asks us to slow down for the whole destination."""
    rule = throttle_rule(reply)
    return rule is not None and rule.throttling
