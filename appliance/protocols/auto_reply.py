"""Recognise automatic replies and bounce-shaped messages by their headers.

An auto-reply (vacation, out of office, RFC 3834) must never count as a
bounce. ``Auto-Submitted: auto-replied`` alone does not decide it: Exim and
others put that header on their bounces too, so callers look for bounce
evidence first and ask :func:`is_auto_reply` only when there is none.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Final

from appliance.protocols.bounce_mime import header

_AUTO_REPLY_SUBJECT_RE: Final = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer)\b|auto:|out of (?:the )?office"
    r"|vacation|away from|abwesenheit|r[ée]ponse automatique|risposta automatica"
    r"|respuesta autom[aá]tica|automatisch(?:e)? antwort|i am (?:currently )?(?:out|away))",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS: Final = ("x-autoreply", "x-autorespond", "x-vacation", "x-autoresponder")
_BOUNCE_SENDER_RE: Final = re.compile(
    r"mailer-daemon|postmaster|mail delivery (?:system|subsystem|service)|mail ?administrator"
    r"|\bmmdf\b|\bmdaemon\b|\bnotes? mail router\b|\bsmtp gateway\b|\bmail ?router\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE: Final = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|notification|problem|report)"
    r"|failure notice|returned mail|mail delivery failed|could not be delivered"
    r"|non.?deliver|not delivered|delivery has failed|mail system error|warning: could not send"
    r"|delayed mail|message delayed|delivery delayed|returned to sender|rejected|bounce"
    r"|error sending|unable to deliver|mail failure|permanent error|delivery notification",
    re.IGNORECASE,
)
_BOUNCE_BODY_RE: Final = re.compile(
    r"could not be delivered|couldn't be delivered|delivery (?:has )?failed|failed permanently"
    r"|permanent (?:fatal )?error|undeliverable|unable to deliver|was not delivered"
    r"|following (?:address|recipient)s? (?:had|failed|could)|not (?:be )?delivered to"
    r"|delivery to the following|qmail-send program|mail delivery software|returned to sender"
    r"|message delivery failed|delivery problems?|i'm sorry to have to inform you"
    r"|your message (?:did not|could not|cannot|was not|wasn't)|delivery status notification"
    r"|recipient address rejected|user unknown|no such user",
    re.IGNORECASE,
)


def is_auto_reply(msg: Message) -> bool:
    """Whether headers mark the message as an automatic reply (RFC 3834 and common practice)."""
    auto_submitted = header(msg, "Auto-Submitted").strip().lower()
    if auto_submitted.startswith("auto-replied"):
        return True
    precedence = header(msg, "Precedence").strip().lower()
    if precedence in ("auto_reply", "auto-reply"):
        return True
    if any(msg.get(name) is not None for name in _AUTO_REPLY_HEADERS):
        return True
    return _AUTO_REPLY_SUBJECT_RE.search(header(msg, "Subject")) is not None


def has_bounce_headers(msg: Message) -> bool:
    """Whether the sender, subject or ``X-Failed-Recipients`` say this is a failure report."""
    if msg.get("X-Failed-Recipients") is not None:
        return True
    return bool(
        _BOUNCE_SENDER_RE.search(header(msg, "From"))
        or _BOUNCE_SUBJECT_RE.search(header(msg, "Subject"))
    )


def has_bounce_wording(body: str) -> bool:
    """Whether the text uses the phrases of a delivery failure report."""
    return _BOUNCE_BODY_RE.search(body) is not None
