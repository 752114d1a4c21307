"""The bounce classifier's rule table, row by row."""

from __future__ import annotations

import pytest

from appliance.domain.bounce_classification import (
    BounceClass,
    classify_failure,
    classify_reply,
    is_greylisting,
)
from appliance.protocols.smtp_reply import EnhancedStatus, Reply

HARD, SOFT, BLOCK = BounceClass.HARD, BounceClass.SOFT, BounceClass.BLOCK


@pytest.mark.parametrize(
    ("code", "status", "text", "expected"),
    [
        # Enhanced codes from the SPEC table.
        (550, "5.1.1", "User unknown", HARD),
        (550, "5.1.10", "Recipient address has null MX", HARD),
        (550, "5.2.1", "Mailbox disabled", HARD),
        (550, "5.1.2", "Bad destination system address", HARD),
        (552, "5.2.2", "Mailbox full", SOFT),
        (552, "5.3.4", "Message too big for system", SOFT),
        (550, "5.7.1", "Message rejected", BLOCK),
        (550, "5.7.26", "Unauthenticated email is not accepted (DMARC)", BLOCK),
        (554, "5.7.606", "Access denied, banned sending IP", BLOCK),
        # Sender-address problems are not the recipient's fault.
        (553, "5.1.8", "Sender address domain does not exist", BLOCK),
        # Transient failures are soft whatever the text says.
        (450, "4.1.1", "User unknown in virtual alias table", SOFT),
        (421, None, "Service not available, closing channel", SOFT),
        (451, "4.7.1", "Please try again later", SOFT),
        (None, "4.4.7", "", SOFT),
        # No enhanced code: the text decides.
        (550, None, "User unknown", HARD),
        (550, None, "no such user here", HARD),
        (550, None, "Requested action not taken: mailbox unavailable", HARD),
        (552, None, "Mailbox full", SOFT),
        (550, None, "Quota exceeded", SOFT),
        (554, None, "Blocked - see https://dnsbl.example/lookup", BLOCK),
        (550, None, "Your IP is on our blacklist", BLOCK),
        (550, None, "Message rejected as spam", BLOCK),
        (550, None, "Rejected due to poor reputation", BLOCK),
        (550, None, "Policy violation", BLOCK),
        # A generic enhanced code defers to the text.
        (550, "5.0.0", "User unknown", HARD),
        (550, "5.0.0", "Mailbox full", SOFT),
        (550, "5.0.0", "Client host blocked for spamming issues", BLOCK),
        # Decisive phrases win over a sloppy code.
        (550, "5.1.1", "Over quota", SOFT),
        (550, "5.1.1", "IP address blacklisted by recipient", BLOCK),
        (550, "5.2.1", "sent to too many recipients this hour", SOFT),
        # The SMTP stage: refused at MAIL FROM is about us; user unknown after DATA is a filter.
        (550, None, "SMTP error after MAIL FROM:<a@b.example>: 550 Please use your ISP", BLOCK),
        (550, None, "550 user unknown (in reply to end of DATA command)", BLOCK),
        # Bare reply codes with a meaning of their own.
        (553, None, "", HARD),
        (554, None, "", BLOCK),
        (503, None, "Improper sequence of commands", SOFT),
        # No evidence at all: a permanent failure we cannot explain is final.
        (None, None, "", HARD),
        (550, None, "", HARD),
    ],
)
def test_classify_failure_table(
    code: int | None, status: str | None, text: str, expected: BounceClass
) -> None:
    enhanced = EnhancedStatus.parse(status) if status else None
    assert classify_failure(code, enhanced, text) is expected


def test_classify_reply_uses_code_enhanced_status_and_text() -> None:
    assert classify_reply(Reply.build(550, "5.1.1", "User unknown")) is HARD
    assert classify_reply(Reply.build(452, "4.2.2", "Mailbox full")) is SOFT
    assert classify_reply(Reply.build(550, None, "Blocked by policy")) is BLOCK


def test_classify_reply_refuses_a_positive_reply() -> None:
    with pytest.raises(ValueError, match="not a failure"):
        classify_reply(Reply.build(250, "2.0.0", "OK"))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.build(451, "4.7.1", "Greylisted, please try again later"), True),
        (Reply.build(450, "4.2.0", "Greylisted for 300 seconds"), True),
        (Reply.build(450, None, "Recipient address rejected: Greylisted"), True),
        (Reply.build(451, "4.7.1", "Please try again later"), True),
        (Reply.build(451, None, "Temporary local problem - please try again later"), True),
        (Reply.build(421, "4.7.0", "Try again later, closing connection"), False),
        (Reply.build(452, "4.2.2", "Mailbox full"), False),
        (Reply.build(450, "4.1.1", "User unknown in virtual alias table"), False),
        (Reply.build(550, "5.7.1", "Greylisting is not why you failed"), False),
    ],
)
def test_is_greylisting(reply: Reply, expected: bool) -> None:
    assert is_greylisting(reply) is expected
