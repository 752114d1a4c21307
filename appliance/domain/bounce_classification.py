"""Bounce classes: what a delivery failure means for the recipient.

One table per kind of evidence, read in order of trust:

1. the enhanced status code (RFC 3463), exact code first, then by subject;
2. when the code is missing or says nothing (``X.0.0``), the reply text;
3. when the text says nothing either, the basic reply code, then its class.

A transient failure (4xx, ``4.x.x``) is always SOFT: the recipient may exist.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

from appliance.protocols.smtp_reply import EnhancedStatus, Reply


class BounceClass(Enum):
    """What to do with the recipient after a failure."""

    HARD = "hard"  # the address is gone: suppress it
    SOFT = "soft"  # try again later, or the message itself was the problem
    BLOCK = "block"  # the receiver refused us (policy, reputation, content)


# Exact permanent enhanced codes, (subject, detail) -> class. Checked first.
_EXACT_STATUS: Final[dict[tuple[int, int], BounceClass]] = {
    (1, 1): BounceClass.HARD,  # bad destination mailbox address
    (1, 10): BounceClass.HARD,  # recipient address has null MX (RFC 7505)
    (1, 6): BounceClass.HARD,  # destination mailbox has moved
    # 5.1.7 / 5.1.8 are about *our* sender address: suppressing the recipient
    # would be wrong, the receiver refused the sender.
    (1, 7): BounceClass.BLOCK,
    (1, 8): BounceClass.BLOCK,
    (2, 1): BounceClass.HARD,  # mailbox disabled
    (2, 2): BounceClass.SOFT,  # mailbox full
    (2, 3): BounceClass.SOFT,  # message too large for the mailbox
    (3, 4): BounceClass.SOFT,  # message too large for the system
    (4, 4): BounceClass.HARD,  # unable to route: the domain does not resolve
    (7, 26): BounceClass.BLOCK,  # DMARC / multiple authentication checks failed
}

# Permanent enhanced codes by subject, when the exact code is not listed.
# Subjects absent here (and every ``X.0.0``) defer to the text.
_SUBJECT_STATUS: Final[dict[int, BounceClass]] = {
    1: BounceClass.HARD,  # addressing
    2: BounceClass.SOFT,  # mailbox status (full, disabled handled above)
    3: BounceClass.SOFT,  # mail system status (full, not accepting, too big)
    4: BounceClass.SOFT,  # network and routing
    5: BounceClass.SOFT,  # mail delivery protocol
    6: BounceClass.BLOCK,  # message content or media
    7: BounceClass.BLOCK,  # security or policy
}

# Phrases so specific that they decide even against the enhanced code (servers
# often send a generic or wrong code with a precise explanation).
_DECISIVE_TEXT: Final[tuple[tuple[re.Pattern[str], BounceClass], ...]] = tuple(
    (re.compile(pattern, re.IGNORECASE), klass)
    for pattern, klass in (
        (
            r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|violation)"
            r"|exceed\w* (?:\w+ )?quota|disk ?quota|mailbox size limit"
            r"|insufficient (?:disk|storage) space"
            r"|mailbox.{0,30}exceed|exceeds allowed size",
            BounceClass.SOFT,
        ),
        (
            r"too many (?:recipients|messages|connections|emails)|rate limit|frequency limit"
            r"|receiving mail at a rate|sending rate|try again later|temporarily (?:locked|blocked)"
            r"|name service error|routing loop|hop count exceeded|command (?:died|output)"
            r"|\bx-unix;|pipe to \|",
            BounceClass.SOFT,
        ),
        (
            r"black ?list|block ?list|\bdnsbl|spamhaus|spamcop|\bspam\b|listed (?:on|in|at)"
            r"|reputation|message filtered|content filter|\bdmarc\b|virus|malware"
            r"|sender (?:address )?rejected|relay(?:ing)? (?:access )?denied"
            r"|not permitted to relay",
            BounceClass.BLOCK,
        ),
        # The SMTP stage tells whose fault it is. Refused before any recipient
        # was named (connection, HELO, MAIL FROM), it is about us; "user
        # unknown" after the data was sent is a content filter speaking, since
        # the mailbox existed at RCPT time.
        (
            r"(?:after|in reply to|while sending) (?:the )?"
            r"(?:mail from|initial connection|helo|ehlo|greeting)|>>> mail from"
            r"|(?:end of data|>>> data|after data).{0,200}"
            r"(?:user unknown|unknown user|no such user)"
            r"|(?:user unknown|unknown user|no such user).{0,80}end of data",
            BounceClass.BLOCK,
        ),
    )
)

# Free-text evidence when the code says nothing; first match wins.
_TEXT_RULES: Final[tuple[tuple[re.Pattern[str], BounceClass], ...]] = tuple(
    (re.compile(pattern, re.IGNORECASE), klass)
    for pattern, klass in (
        (r"quota|storage (?:allocation|space)|out of (?:disk )?space", BounceClass.SOFT),
        (
            r"message (?:is )?too (?:large|big)|size (?:limit|exceeds)|message size",
            BounceClass.SOFT,
        ),
        (
            r"service (?:currently )?unavailable|system error|internal error|local error"
            r"|could not deliver for|could not be delivered for \d+|did not accept our requests"
            r"|timed? ?out|expired|retry time|connection (?:refused|reset|closed)|temporar"
            r"|protocol error|improper sequence|not implemented|syntax error",
            BounceClass.SOFT,
        ),
        (
            r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|account)"
            r"|mailbox (?:is )?unavailable|mailbox not found|does not exist|doesn't exist"
            r"|not exist|invalid (?:recipient|address|mailbox|user)"
            r"|unknown (?:recipient|address|mailbox|local)|address (?:is )?unknown"
            r"|not (?:a )?(?:valid|known|registered) (?:recipient|user|mailbox)"
            r"|(?:user|recipient) (?:not found|doesn't|does not)|no mailbox|unrouteable"
            r"|host (?:or domain name )?not found|host unknown|unknown host"
            r"|domain (?:not found|does not)|no longer|bad destination"
            r"|addressee unknown|recipient not found"
            r"|not our customer|unknown or illegal alias|account (?:has been )?disabled"
            r"|name is not recognized|doesn't have a .{1,60} account|address rejected",
            BounceClass.HARD,
        ),
        (
            r"blocked|\bbloque|policy|prohibited|not allowed|denied|refused|rejected|violation"
            r"|\bspf\b|dkim|authenticat|reverse dns|\bptr\b|banned|suspicious|unsolicited",
            BounceClass.BLOCK,
        ),
    )
)

# Basic reply codes with a meaning of their own (RFC 5321 §4.2.3), when neither
# the enhanced code nor the text decided.
_REPLY_CODE: Final[dict[int, BounceClass]] = {
    500: BounceClass.SOFT,  # syntax errors: a software problem, not the mailbox
    501: BounceClass.SOFT,
    502: BounceClass.SOFT,
    503: BounceClass.SOFT,
    504: BounceClass.SOFT,
    550: BounceClass.HARD,  # mailbox unavailable
    551: BounceClass.HARD,  # user not local
    552: BounceClass.SOFT,  # exceeded storage allocation
    553: BounceClass.HARD,  # mailbox name not allowed
    554: BounceClass.BLOCK,  # transaction failed (most often a policy refusal)
    521: BounceClass.HARD,  # does not accept mail (RFC 7504)
    556: BounceClass.HARD,  # domain does not accept mail (RFC 7504)
}

_GREYLIST_WORDING: Final = re.compile(r"gr[ae]y.?list", re.IGNORECASE)
_RETRY_WORDING: Final = re.compile(
    r"try again later|please (?:try again|retry)|temporarily (?:deferred|rejected)"
    r"|come back later",
    re.IGNORECASE,
)
_GREYLIST_STATUSES: Final = frozenset({(4, 7, 1), (4, 2, 0)})
_GREYLIST_CODES: Final = frozenset({450, 451})


def classify_text(text: str) -> BounceClass | None:
    """The class free text points to, or None when it names no known cause."""
    for pattern, klass in (*_DECISIVE_TEXT, *_TEXT_RULES):
        if pattern.search(text):
            return klass
    return None


def classify_failure(
    code: int | None, status: EnhancedStatus | None, text: str = ""
) -> BounceClass:
    """Classify a failure from a reply code, an enhanced status and free text.

    Any of them may be missing; with no evidence at all a failure is HARD
    (a permanent failure we cannot explain is safest treated as final).
    """
    transient = (status is not None and status.klass == 4) or (
        code is not None and 400 <= code < 500
    )
    if transient:
        return BounceClass.SOFT
    for pattern, klass in _DECISIVE_TEXT:
        if pattern.search(text):
            return klass
    if status is not None and status.klass == 5:
        exact = _EXACT_STATUS.get((status.subject, status.detail))
        if exact is not None:
            return exact
        if status.detail != 0 or status.subject in (6, 7):
            by_subject = _SUBJECT_STATUS.get(status.subject)
            if by_subject is not None:
                return by_subject
    by_text = classify_text(text)
    if by_text is not None:
        return by_text
    if status is not None and status.klass == 5:
        by_subject = _SUBJECT_STATUS.get(status.subject)
        if by_subject is not None:
            return by_subject
    if code is not None and code in _REPLY_CODE:
        return _REPLY_CODE[code]
    return BounceClass.HARD


def classify_reply(reply: Reply) -> BounceClass:
    """Classify a failed SMTP reply (4xx or 5xx) received during delivery."""
    if reply.is_positive():
        raise ValueError(f"a positive reply is not a failure: {reply}")
    return classify_failure(reply.code, reply.enhanced, reply.text)


def is_greylisting(reply: Reply) -> bool:
    """Whether a transient reply looks like greylisting (worth a short first retry).

    Explicit greylist wording counts on any 4xx reply; the vaguer "try again
    later" counts only with the codes greylisters use (4.7.1, 4.2.0, 450, 451).
    """
    if not reply.is_transient():
        return False
    if _GREYLIST_WORDING.search(reply.text):
        return True
    if not _RETRY_WORDING.search(reply.text):
        return False
    enhanced = reply.enhanced
    if enhanced is not None and (enhanced.klass, enhanced.subject, enhanced.detail) in (
        _GREYLIST_STATUSES
    ):
        return True
    return reply.code in _GREYLIST_CODES
