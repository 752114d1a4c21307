"""Bounce classes: what a delivery failure means for the recipient.

One table per kind of evidence, read in order of trust:

1. phrases so precise they decide even against the enhanced code;
2. the enhanced status code (RFC 3463), exact code first, then by subject;
3. when the code is missing or says nothing (``X.0.0``), the reply text;
4. when the text says nothing either, the basic reply code, then its class.

What a sender does with each class decides where a phrase belongs: HARD
suppresses the address (it cannot receive mail), BLOCK suppresses it on the
blocks list and points at our own reputation, policy or content, SOFT leaves it
to be tried again later. The tables follow the SPEC's enhanced codes and, for
text, Sisimai's reasons: userunknown/hostunknown/hasmoved/notaccept are HARD;
blocked/badreputation/requireptr/spamdetected/policyviolation/rejected/
norelaying/contenterror/filtered/securityerror/authfailure are BLOCK;
mailboxfull/exceedlimit/mesgtoobig/systemerror/systemfull/toomanyconn/expired/
networkerror/mailererror/suspend/syntaxerror/speeding are SOFT.

A transient failure (4xx, ``4.x.x``) received live is always SOFT: the
recipient may exist. A bounce report is read a little differently (see
:func:`classify_reported_failure`): the reporting server has already given up.
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
    # Mailbox disabled: HARD by the SPEC when the code is all we have. Text
    # saying the account is suspended or inactive decides first (SOFT, below).
    (2, 1): BounceClass.HARD,
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


def _rules(
    *rows: tuple[str, BounceClass],
) -> tuple[tuple[re.Pattern[str], BounceClass], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), klass) for pattern, klass in rows)


# Phrases so specific that they decide even against the enhanced code (servers
# often send a generic or wrong code with a precise explanation). First match wins.
_DECISIVE_TEXT: Final = _rules(
    # mailboxfull / exceedlimit: the recipient exists; retry later.
    (
        r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|violation)"
        r"|exceed\w* (?:\w+ )?quota|disk ?quota|mailbox size limit"
        r"|insufficient (?:disk|storage) space"
        r"|mailbox.{0,30}exceed|exceeds allowed size",
        BounceClass.SOFT,
    ),
    # suspend: the person's account exists but their provider has switched it
    # off for now (unpaid, unused, locked after abuse). Providers switch such
    # accounts back on, so a sender keeps the address and tries again later
    # rather than suppressing it; this is why it wins over 5.2.1 and a careless
    # 5.x.x. "Mailbox disabled" alone is RFC 3463's stock text for 5.2.1 and
    # says no more than the code (HARD by the SPEC), so "disabled" needs
    # "account"; "your account" or the "sender account" is ours, not the recipient's.
    (
        r"(?<!your )(?<!sender )(?<!sender's )account(?:[^.;:<>]{0,40}?\b(?:is|has been|was))?"
        r"(?: temporarily| currently)? (?:disabled|suspended|inactive|frozen|locked"
        r"|blocked|bloque)\b"
        r"|mailbox(?: is| has been| was)?(?: temporarily| currently)?"
        r" (?:suspended|inactive|frozen|locked)\b",
        BounceClass.SOFT,
    ),
    # userunknown / notaccept said precisely enough to beat a policy-looking
    # code: Microsoft's directory-based edge blocking answers "Recipient address
    # rejected: Access denied" (5.4.1, 5.7.1) for addresses it does not know;
    # "does not accept mail" is RFC 7504's wording for a domain without mail.
    (
        r"recipient address rejected: access denied"
        r"|(?:host|domain) (?:does not|doesn't) accept (?:any )?mail"
        r"|indicated no smtp service",
        BounceClass.HARD,
    ),
    # blocked / badreputation / requireptr / spamdetected / virusdetected /
    # norelaying / rejected (sender): the receiver refused *us*. Checked before
    # the rate-limit wording: "rate limited due to IP reputation" is about us.
    (
        r"black ?list|block ?list|\bdnsbl|spamhaus|spamcop|\bspam\b|listed (?:on|in|at)"
        r"|reputation|message filtered|content filter|\bdmarc\b|virus|malware"
        r"|sender (?:address )?rejected|relay(?:ing)? (?:access )?denied"
        r"|not permitted to relay|access denied|refused to talk to me|service refused"
        r"|\bip name lookup failed|client host rejected"
        r"|(?:do not|don't|not) have (?:the )?permissions? to (?:post|send)"
        r"|not (?:allowed|authori[sz]ed) to (?:post|send)",
        BounceClass.BLOCK,
    ),
    # toomanyconn / speeding / systemerror / mailererror: a passing condition.
    (
        r"too many (?:recipients|messages|connections|emails)|rate limit|frequency limit"
        r"|receiving mail at a rate|sending rate|try again later|temporarily (?:locked|blocked)"
        r"|routing loop|hop count exceeded|command (?:died|output)"
        r"|\bx-unix;|pipe to \|",
        BounceClass.SOFT,
    ),
)

# The SMTP stage tells whose fault it is: refused before any recipient was
# named (connection, HELO, MAIL FROM), a permanent refusal is about us. Checked
# right after the decisive phrases (which know better, e.g. "mailbox full").
_BEFORE_RECIPIENT: Final = re.compile(
    r"(?:after|in reply to|while sending) (?:the )?"
    r"(?:mail from|initial connection|helo|ehlo|greeting)|>>> mail from",
    re.IGNORECASE,
)

# "User unknown" in reply to the message data: the mailbox existed when the
# recipient was named, so a content filter is speaking (Sisimai's "filtered").
# Checked after the exact codes: a 5.1.1 shown after DATA is a pipelined reply
# to RCPT TO, which is where servers reject unknown users.
_AFTER_DATA_UNKNOWN: Final = re.compile(
    r"(?:end of data|>>> data|after data).{0,200}(?:user unknown|unknown user|no such user)"
    r"|(?:user unknown|unknown user|no such user).{0,80}end of data",
    re.IGNORECASE,
)

# Free-text evidence when the code says nothing; first match wins.
_TEXT_RULES: Final = _rules(
    (r"quota|storage (?:allocation|space)|out of (?:disk )?space", BounceClass.SOFT),
    (
        r"message (?:is )?too (?:large|big)|size (?:limit|exceeds)|message size",
        BounceClass.SOFT,
    ),
    # hostunknown / notaccept: named before the network errors because a DNS
    # answer that the host does not exist is final, unlike a failed lookup.
    (
        r"host (?:or domain name )?not found|host unknown|unknown host|no such domain"
        r"|no mx record",
        BounceClass.HARD,
    ),
    # systemerror / networkerror / expired / syntaxerror.
    (
        r"service (?:currently )?unavailable|system error|internal error|local error"
        r"|could not deliver for|could not be delivered for \d+|did not accept our requests"
        r"|timed? ?out|expired|retry time|connection (?:refused|reset|closed)|temporar"
        r"|protocol error|improper sequence|not implemented|syntax error|name service error",
        BounceClass.SOFT,
    ),
    # userunknown / hasmoved.
    (
        r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|account)"
        r"|mailbox (?:is )?unavailable|mailbox not found|does not exist|doesn't exist"
        r"|not exist|invalid (?:recipient|address|mailbox|user|final delivery userid)"
        r"|unknown (?:recipient|address|mailbox|local)|address (?:is )?unknown"
        r"|not (?:a )?(?:valid|known|registered) (?:recipient|user|mailbox)"
        r"|(?:user|recipient) (?:not found|doesn't|does not)|no mailbox|unrouteable"
        r"|domain (?:not found|does not)|no longer|bad destination"
        r"|addressee unknown|recipient not found|no valid recipients"
        r"|not our customer|unknown or illegal alias"
        r"|name is not recognized|doesn't have a .{1,60} account|address rejected"
        r"|check (?:if|that|whether) (?:the )?(?:e-?mail )?address is (?:correct|valid|right)",
        BounceClass.HARD,
    ),
    # rejected / policyviolation / authfailure / requireptr.
    (
        r"blocked|\bbloque|policy|prohibited|not allowed|denied|refused|rejected|violation"
        r"|\bspf\b|dkim|authenticat|reverse dns|\bptr\b|banned|suspicious|unsolicited",
        BounceClass.BLOCK,
    ),
)

# Wording that names a missing mailbox (Sisimai's userunknown phrases). In a
# bounce report it is HARD only when something corroborates it; see
# classify_reported_failure.
_UNKNOWN_MAILBOX: Final = re.compile(
    r"user unknown|unknown (?:user|recipient|mailbox|e-?mail address|local.?part)"
    r"|no such (?:user|mailbox|recipient|person|address)|recipient not found"
    r"|mailbox (?:is )?unavailable|mailbox not found|doesn't have an? .{1,60} account"
    r"|invalid (?:address|recipient|mailbox)|not an? (?:valid|known|registered)\b.{0,20}\buser",
    re.IGNORECASE,
)

# The recipient was refused when it was named (RCPT TO), or the reporting
# server states its own verdict that the address was refused or is not known
# (a headline such as "Address not found", not a relayed reply).
_REFUSED_AT_RCPT: Final = re.compile(
    r"(?:in reply to|after|while sending|did not like our|not accepted)\W+(?:the )?rcpt\b"
    r"|>>>\s*rcpt to:[^\n<]*<[^>]*>[^\n]{0,40}\s*<<<\s*5\d\d|\bsmtp:rcpt\b"
    r"|rejected (?:the )?(?:recipient )?address|address (?:not found|couldn't be found"
    r"|could not be found)|recipient (?:name )?is not recognized",
    re.IGNORECASE,
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


def _decisive(text: str) -> BounceClass | None:
    return next((klass for pattern, klass in _DECISIVE_TEXT if pattern.search(text)), None)


def classify_text(text: str) -> BounceClass | None:
    """The class free text points to, or None when it names no known cause."""
    for pattern, klass in _DECISIVE_TEXT:
        if pattern.search(text):
            return klass
    if _BEFORE_RECIPIENT.search(text):
        return BounceClass.BLOCK
    for pattern, klass in _TEXT_RULES:
        if pattern.search(text):
            return klass
    return None


def _is_transient(code: int | None, status: EnhancedStatus | None) -> bool:
    return (status is not None and status.klass == 4) or (code is not None and 400 <= code < 500)


def classify_failure(
    code: int | None, status: EnhancedStatus | None, text: str = ""
) -> BounceClass:
    """Classify a failure from a reply code, an enhanced status and free text.

    Any of them may be missing; with no evidence at all a failure is HARD
    (a permanent failure we cannot explain is safest treated as final).
    """
    if _is_transient(code, status):
        return BounceClass.SOFT
    return _permanent_class(code, status, text) or BounceClass.HARD


def _permanent_class(
    code: int | None, status: EnhancedStatus | None, text: str
) -> BounceClass | None:
    """The class of a permanent failure, or None when nothing explains it."""
    decisive = _decisive(text)
    if decisive is not None:
        return decisive
    if _BEFORE_RECIPIENT.search(text):
        return BounceClass.BLOCK
    if status is not None and status.klass == 5:
        exact = _EXACT_STATUS.get((status.subject, status.detail))
        if exact is not None:
            return exact
    if _AFTER_DATA_UNKNOWN.search(text):
        return BounceClass.BLOCK
    specific = status is not None and (status.detail != 0 or status.subject in (6, 7))
    if status is not None and status.klass == 5 and specific:
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
    if code is not None:
        return _REPLY_CODE.get(code, BounceClass.HARD)
    return None


def classify_reported_failure(
    code: int | None, status: EnhancedStatus | None, text: str
) -> BounceClass:
    """Classify a failure that a bounce report says is final (the server gave up).

    Two things differ from a reply received live:

    - A transient code in a final report means the reporting server retried
      until it gave up. That is a SOFT bounce (``expired``), unless the text
      says the receiver kept refusing *us* (reputation, missing PTR, a refused
      service): then it is BLOCK, since retrying the same way will not help.
    - "User unknown" wording is HARD only when corroborated: by an enhanced
      code that says the address does not exist (5.1.1, 5.1.10, ...), or by the
      refusal coming in reply to RCPT TO. Said under another code (5.0.0,
      5.2.0, 5.7.x), after the message data, or relayed by a gateway without
      the stage, it is most often a filter refusing the sender with the
      cheapest lie (Sisimai's "filtered"): BLOCK. Both classes suppress the
      address; the class tells the user to look at the sending side.
    """
    if _is_transient(code, status):
        if _decisive(text) is BounceClass.BLOCK:
            return BounceClass.BLOCK
        return BounceClass.SOFT
    klass = _permanent_class(code, status, text)
    if klass is None:
        # No reply code, no specific status, no words we know. An SMTP server
        # refusing an unknown mailbox always answers with a code (and nearly
        # always with 5.1.1 or a stock phrase); a refusal without one comes
        # from software above SMTP: a group or list refusing a non-member's
        # post, a gateway, a moderation queue. That refused the sender (BLOCK),
        # and it must not count against the tenant's hard-bounce rate.
        return BounceClass.BLOCK
    if klass is not BounceClass.HARD or not _UNKNOWN_MAILBOX.search(text):
        return klass
    if status is not None and status.subject == 1:
        return klass  # a 5.1.x about the recipient (5.1.7/5.1.8 are BLOCK above)
    if _REFUSED_AT_RCPT.search(text):
        return klass
    return BounceClass.BLOCK


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
    if enhanced is not None:  # an enhanced code says more than the basic one
        return (enhanced.klass, enhanced.subject, enhanced.detail) in _GREYLIST_STATUSES
    return reply.code in _GREYLIST_CODES
