"""The bounce classifier's rule table, row by row."""

from __future__ import annotations

import pytest

from appliance.domain.bounce_classification import (
    BounceClass,
    classify_failure,
    classify_reply,
    classify_reported_failure,
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
        # A suspended, inactive or frozen account comes back: retry, do not suppress.
        # The code's own stock text ("Mailbox disabled") says no more than 5.2.1.
        (550, "5.2.1", "The email account that you tried to reach is disabled", SOFT),
        (550, "5.2.1", "The email account that you tried to reach is inactive", SOFT),
        (525, "5.7.13", "Recipient address rejected: User account disabled", SOFT),
        (550, None, "Mailbox is frozen", SOFT),
        (550, "5.5.0", "The recipient account is blocked", SOFT),
        (550, None, "Your account has been blocked for sending spam", BLOCK),
        (550, "5.7.1", "Rejected: the sender account is blocked", BLOCK),
        # Precise wording that beats a misleading code.
        (550, "5.4.1", "Recipient address rejected: Access denied", HARD),
        (550, "5.7.27", "Host does not accept mail", HARD),
        (550, "5.1.0", "Unknown address error 550-'5.7.1 Access denied'", BLOCK),
        (550, None, "You do not have permission to post to this group", BLOCK),
        (550, None, "Rate limited due to IP reputation", BLOCK),
        (550, "5.3.0", "Connection rate limit exceeded", SOFT),
        # A DNS answer that the host does not exist is final; a failed lookup is not.
        (550, "5.4.4", "Name service error for name=example.org type=MX: Host not found", HARD),
        (550, None, "Host unknown; connection reset by peer", HARD),
        (550, None, "Name service error: try again", SOFT),
        # The SMTP stage: refused at MAIL FROM is about us; user unknown after DATA is a
        # filter, unless a 5.1.1 says it is a pipelined reply to RCPT TO.
        (550, None, "SMTP error after MAIL FROM:<a@b.example>: 550 Please use your ISP", BLOCK),
        (550, None, "550 user unknown (in reply to end of DATA command)", BLOCK),
        (550, "5.1.1", ">>> DATA <<< 550 5.1.1 <a@b.example>... User unknown", HARD),
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


@pytest.mark.parametrize(
    ("code", "status", "text", "expected"),
    [
        # The reporting server gave up on a transient failure: soft (expired)...
        (421, "4.4.2", "Connection timed out", SOFT),
        (None, "4.4.7", "Message could not be delivered for 8 hours", SOFT),
        (450, "4.1.1", "Recipient address rejected: User unknown in virtual alias table", SOFT),
        (452, "4.3.1", "after MAIL FROM: Insufficient system storage", SOFT),
        # ...unless the receiver kept refusing us, which retrying will not change.
        (450, "4.7.1", "Access denied. IP name lookup failed [192.0.2.1]", BLOCK),
        (
            451,
            "4.7.650",
            "The mail server has been temporarily rate limited due to IP reputation",
            BLOCK,
        ),
        (None, "4.0.0", "connect to mx.example.com: server refused to talk to me: 421", BLOCK),
        # "User unknown" is hard with a 5.1.x or a refusal at RCPT TO...
        (550, "5.1.1", "User unknown", HARD),
        (550, "5.1.351", "Remote server returned unknown recipient", HARD),
        (550, "5.0.0", "550 user unknown (in reply to RCPT TO command)", HARD),
        (550, None, ">>> RCPT To:<a@b.example>\n<<< 550 No such user here", HARD),
        (550, "5.0.0", "Address not found. 550 <a@b.example>: User unknown", HARD),
        # ...and otherwise a filter refusing the sender.
        (550, "5.0.0", "550 : User unknown", BLOCK),
        (550, "5.2.0", "550 Unknown user a@b.example", BLOCK),
        (550, None, "550 user unknown (in reply to end of DATA command)", BLOCK),
        (550, "5.0.0", "'a@b.example' is not a registered gateway user", BLOCK),
        # Other hard evidence needs no corroboration.
        (550, "5.0.0", "550 Host unknown", HARD),
        (550, None, "Mailbox disabled, not accepting messages", HARD),
        (550, None, "", HARD),
        # No code and no words we know: software above SMTP refused the sender.
        (None, None, "", BLOCK),
        (None, "5.0.0", "Queremos informarte de que el grupo no existe", BLOCK),
        # Everything else reads as a live reply would.
        (552, "5.2.2", "Mailbox full", SOFT),
        (550, "5.2.1", "The email account that you tried to reach is disabled", SOFT),
        (550, "5.7.1", "Message rejected as spam", BLOCK),
    ],
)
def test_classify_reported_failure_table(
    code: int | None, status: str | None, text: str, expected: BounceClass
) -> None:
    enhanced = EnhancedStatus.parse(status) if status else None
    assert classify_reported_failure(code, enhanced, text) is expected


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
