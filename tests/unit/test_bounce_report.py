"""parse_bounce on small hand-written reports, and on garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.domain import bounce_report
from appliance.domain.bounce_report import BounceKind, BounceReport, parse_bounce
from appliance.protocols import bounce_mime

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "bounces" / "messages"

DSN = b"""\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounces+msg_01HXYZ@bounce.postyard.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.example.net.

<Invalid@Example.com>: host mx.example.com said: 550 5.1.1 User unknown

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000

Final-Recipient: rfc822; Invalid@Example.com
Original-Recipient: rfc822;invalid@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <invalid@example.com>: Recipient address
    rejected: User unknown in virtual mailbox table

Final-Recipient: rfc822; full@example.com
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

--B
Content-Type: message/rfc822

Message-ID: <original-1@postyard.example>
X-Postyard-Message-Id: msg_01HXYZ
From: app@postyard.example
To: invalid@example.com
Subject: Welcome

Hello
--B--
"""

DELAYED = b"""\
From: MAILER-DAEMON@mx.example.net
To: sender@postyard.example
Subject: Delayed Mail (still being retried)
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; slow@example.com
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.com: Connection timed out
--B--
"""

ARF = b"""\
From: feedback@fbl.example.net
To: abuse@postyard.example
Subject: Abuse report
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an email abuse report.
--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <bounces+msg_9@bounce.postyard.example>
Original-Rcpt-To: <Complainer@Example.net>
Reported-Domain: postyard.example
--B
Content-Type: message/rfc822

Message-ID: <original-2@postyard.example>
X-Postyard-Message-Id: msg_9
To: complainer@example.net

Buy now
--B--
"""

AUTO_REPLY = b"""\
From: Someone <someone@example.com>
To: sender@postyard.example
Subject: Out of Office: Your order
Auto-Submitted: auto-replied
Content-Type: text/plain

I am out of the office until Monday and cannot read mail, so delivery of
your question to me has failed for a few days.
"""

TEXT_BOUNCE = b"""\
From: MAILER-DAEMON@mail.example.org
To: bounces+msg_77@bounce.postyard.example
Subject: failure notice

Hi. This is the qmail-send program at mail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<gone@example.org>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Message-ID: <original-3@postyard.example>
To: gone@example.org
"""


def test_dsn_gives_every_recipient_and_the_keys_to_our_message() -> None:
    report = parse_bounce(DSN)
    assert report.kind is BounceKind.HARD
    assert report.recipient == "invalid@example.com"
    assert report.status == "5.1.1"
    assert report.action == "failed"
    assert report.reporting_mta == "mx.example.net"
    assert report.diagnostic_code is not None
    assert "User unknown in virtual mailbox table" in report.diagnostic_code
    assert report.original_message_id == "original-1@postyard.example"
    assert report.postyard_message_id == "msg_01HXYZ"
    assert report.verp_message_id == "msg_01HXYZ"
    assert [(r.recipient, r.kind) for r in report.recipients] == [
        ("invalid@example.com", BounceKind.HARD),
        ("full@example.com", BounceKind.SOFT),
    ]
    assert report.recipients[0].remote_mta == "mx.example.com"


def test_to_json_dict_is_exactly_the_public_contract() -> None:
    out = parse_bounce(DSN).to_json_dict("x.eml")
    assert list(out) == [
        "file",
        "kind",
        "recipient",
        "status",
        "action",
        "diagnostic_code",
        "reporting_mta",
        "original_message_id",
    ]
    assert out["file"] == "x.eml"
    assert out["kind"] == "hard"
    json.dumps(out)
    empty = BounceReport(kind=BounceKind.NOT_A_BOUNCE).to_json_dict("y.eml")
    assert empty == {
        "file": "y.eml",
        "kind": "not_a_bounce",
        "recipient": None,
        "status": None,
        "action": None,
        "diagnostic_code": None,
        "reporting_mta": None,
        "original_message_id": None,
    }


def test_delayed_dsn_is_delayed_not_a_bounce() -> None:
    report = parse_bounce(DELAYED)
    assert report.kind is BounceKind.DELAYED
    assert report.recipient == "slow@example.com"
    assert report.action == "delayed"
    assert report.status == "4.4.1"


def test_arf_feedback_report_is_a_complaint() -> None:
    report = parse_bounce(ARF)
    assert report.kind is BounceKind.COMPLAINT
    assert report.feedback_type == "abuse"
    assert report.recipient == "complainer@example.net"
    assert report.postyard_message_id == "msg_9"
    assert report.original_message_id == "original-2@postyard.example"


def test_auto_reply_is_not_a_bounce_even_with_failure_wording() -> None:
    report = parse_bounce(AUTO_REPLY)
    assert report.kind is BounceKind.NOT_A_BOUNCE
    assert report.recipient is None


def test_exim_style_bounce_with_auto_replied_header_is_still_a_bounce() -> None:
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
        b"To: sender@postyard.example\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"Auto-Submitted: auto-replied\n"
        b"X-Failed-Recipients: nobody@example.org\n\n"
        b"This message was created automatically by mail delivery software.\n\n"
        b"A message that you sent could not be delivered to one or more of its\n"
        b"recipients. This is a permanent error. The following address(es) failed:\n\n"
        b"  nobody@example.org\n"
        b"    SMTP error from remote mail server after RCPT TO:<nobody@example.org>:\n"
        b"    550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown\n"
    )
    report = parse_bounce(raw)
    assert report.kind is BounceKind.HARD
    assert report.recipient == "nobody@example.org"
    assert report.status == "5.1.1"


def test_text_bounce_from_qmail() -> None:
    report = parse_bounce(TEXT_BOUNCE)
    assert report.kind is BounceKind.HARD
    assert report.recipient == "gone@example.org"
    assert report.status == "5.1.1"
    assert report.verp_message_id == "msg_77"
    assert report.original_message_id == "original-3@postyard.example"


def test_plain_mail_is_not_a_bounce() -> None:
    raw = b"From: a@example.com\nTo: b@example.com\nSubject: Lunch?\n\nAt noon?\n"
    assert parse_bounce(raw).kind is BounceKind.NOT_A_BOUNCE


def test_dsn_with_only_delivered_recipients_is_not_a_bounce() -> None:
    raw = DELAYED.replace(b"Action: delayed", b"Action: delivered").replace(
        b"Status: 4.4.1", b"Status: 2.0.0"
    )
    assert parse_bounce(raw).kind is BounceKind.NOT_A_BOUNCE


@pytest.mark.parametrize("raw", [b"", b"\x00\xff" * 100, b"Content-Type: multipart/report\n\n--"])
def test_garbage_is_not_a_bounce(raw: bytes) -> None:
    assert parse_bounce(raw).kind is BounceKind.NOT_A_BOUNCE


def _parse_unguarded(raw: bytes) -> BounceReport:
    """parse_bounce without its last-resort ``except``, which would hide our own bugs."""
    return bounce_report._parse(bounce_mime.load(raw))


@given(st.binary(max_size=4000))
@settings(max_examples=300, deadline=None)
def test_parse_bounce_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(_parse_unguarded(raw), BounceReport)
    assert isinstance(parse_bounce(raw), BounceReport)


_SAMPLES = sorted(CORPUS.rglob("*.eml"))[::9] if CORPUS.is_dir() else []


@pytest.mark.skipif(not _SAMPLES, reason="bounce corpus not present")
@given(
    index=st.integers(min_value=0, max_value=max(len(_SAMPLES) - 1, 0)),
    cuts=st.lists(st.tuples(st.integers(0, 20_000), st.binary(max_size=40)), max_size=6),
    truncate=st.integers(min_value=0, max_value=40_000),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_bounce_never_raises_on_mutated_corpus_messages(
    index: int, cuts: list[tuple[int, bytes]], truncate: int
) -> None:
    raw = bytearray(_SAMPLES[index].read_bytes())
    for position, junk in cuts:
        at = position % (len(raw) + 1)
        raw[at : at + len(junk)] = junk
    assert isinstance(_parse_unguarded(bytes(raw[: truncate or None])), BounceReport)


def _dsn(status: str, diagnostic: str, text: str = "Delivery to a recipient failed.") -> bytes:
    return (
        "From: MAILER-DAEMON@relay.example.net\n"
        "To: bounces+msg_5@bounce.postyard.example\n"
        "Subject: Delivery Status Notification (Failure)\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{text}\n\n"
        "--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; relay.example.net\n\n"
        f"Final-Recipient: rfc822; someone@example.com\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: {diagnostic}\n--B--\n"
    ).encode()


def test_status_is_the_innermost_reply_quoted_in_the_diagnostic() -> None:
    wrapped = "smtp; 5.1.0 - Unknown address error 550-'5.7.1 <x@relay.example>... Access denied'"
    report = parse_bounce(_dsn("5.1.0", wrapped))
    assert report.status == "5.7.1"
    assert report.kind is BounceKind.BLOCK
    expired = "smtp; 554 4.4.7 Message expired: unable to deliver.<421 4.4.2 Connection timed out>"
    report = parse_bounce(_dsn("4.4.7", expired))
    assert report.status == "4.4.2"
    assert report.kind is BounceKind.SOFT


def test_a_generic_dsn_status_gives_way_to_the_code_beside_the_address() -> None:
    text = (
        "someone@example.com: 550 5.7.26 <someone@example.com>: Recipient address rejected:"
        " Multiple authentication checks failed"
    )
    raw = _dsn("5.0.0", "", text).replace(b"Diagnostic-Code: \n", b"")
    report = parse_bounce(raw)
    assert report.status == "5.7.26"
    assert report.kind is BounceKind.BLOCK


def test_a_given_up_transient_failure_is_soft_unless_the_receiver_refused_us() -> None:
    timed_out = parse_bounce(_dsn("4.4.1", "X-Postfix; connect to mx.example.com: timed out"))
    assert timed_out.kind is BounceKind.SOFT
    reputation = parse_bounce(
        _dsn("4.7.650", "smtp; 451 4.7.650 Temporarily rate limited due to IP reputation")
    )
    assert reputation.kind is BounceKind.BLOCK


def test_user_unknown_is_hard_only_with_a_5_1_x_or_at_rcpt_to() -> None:
    assert parse_bounce(_dsn("5.1.1", "smtp; 550 5.1.1 User unknown")).kind is BounceKind.HARD
    at_rcpt = "smtp; 550 User unknown (in reply to RCPT TO command)"
    assert parse_bounce(_dsn("5.0.0", at_rcpt)).kind is BounceKind.HARD
    assert parse_bounce(_dsn("5.0.0", "smtp; 550 : User unknown")).kind is BounceKind.BLOCK


def test_the_transcript_above_an_address_line_is_its_diagnostic() -> None:
    def bounce(transcript: str) -> bytes:
        return (
            "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
            "To: sender@postyard.example\n"
            "Subject: Returned mail: User unknown\n\n"
            "   ----- Transcript of session follows -----\n"
            f"{transcript}"
            "550 <mikeneko@example.co.jp>... User unknown\n\n"
            "   ----- Unsent message follows -----\n"
            "To: mikeneko@example.co.jp\n"
        ).encode()

    with_stage = bounce(
        "While talking to mail.example.co.jp:\n"
        ">>> RCPT To:<mikeneko@example.co.jp>\n"
        "<<< 550 Requested User Mailbox not found. No such user here.\n"
    )
    report = parse_bounce(with_stage)
    assert report.recipient == "mikeneko@example.co.jp"
    assert report.diagnostic_code is not None
    assert report.diagnostic_code.startswith(">>> RCPT To:<mikeneko@example.co.jp>")
    assert report.kind is BounceKind.HARD
    assert parse_bounce(bounce("")).kind is BounceKind.BLOCK


def test_a_report_without_code_or_known_words_is_a_block() -> None:
    raw = (
        b"From: Mail Delivery Subsystem <mailer-daemon@groups.example>\n"
        b"To: sender@postyard.example\n"
        b"Subject: Delivery Status Notification (Failure)\n"
        b"X-Failed-Recipients: list@groups.example\n\n"
        b"Hola, queremos informarte de que el grupo quizas no exista.\n"
    )
    report = parse_bounce(raw)
    assert report.recipient == "list@groups.example"
    assert report.kind is BounceKind.BLOCK
