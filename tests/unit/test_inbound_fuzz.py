"""Fuzzing the inbound path with hypothesis: what the Internet sends to port 25.

- The analysis of a report (parse, match keys, finding, effect on a message in
  any status, the JSON kept with it) never raises, whatever the bytes.
- The SMTP server core, answering as the inbound policy does, never raises,
  always answers to the end, and never lets a refused recipient into a message.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.domain.bounce_report import BounceKind, BounceReport, parse_bounce
from appliance.domain.inbound_outcome import (
    MessageFacts,
    finding_for,
    match_keys,
    plan_effect,
    report_json,
)
from appliance.domain.message_status import MessageStatus
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import MessageData, RcptTo, SmtpLimits
from appliance.protocols.smtp_server_events import DecisionEvent
from appliance.services.inbound import STORE_FAILED, bounce_domain_of, rcpt_refusal
from tests.support.smtp_server_driver import Decide, drive, new_core, parse_replies

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "bounces" / "messages"
BOUNCE_DOMAINS = frozenset({"bounces.example.com"})
MESSAGE_ID = "msg_01jab3cdefghjkmnpqrstvwxyz"
VERP = f"bounces+{MESSAGE_ID}@bounces.example.com"

DSN = f"""\
From: MAILER-DAEMON@mx.example.net
To: {VERP}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.net
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: User unknown

--b
Content-Type: text/rfc822-headers

Message-ID: <{MESSAGE_ID}@example.com>
X-Postyard-Message-Id: {MESSAGE_ID}
To: gone@example.net

--b--
""".replace("\n", "\r\n").encode()

_SAMPLES = [DSN, *(p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))[::7])]


def analyse(raw: bytes) -> None:
    """What the inbound server does with a message before the store: must never raise."""
    report = parse_bounce(raw)
    assert isinstance(report, BounceReport)
    keys = match_keys([VERP, "fbl@bounces.example.com"], report)
    assert len({k.message_id for k in keys}) == len(keys)
    json.dumps(report_json(report))
    json.dumps(report.to_json_dict("fuzz.eml"))
    for recipient in (None, "gone@example.net", report.recipient):
        finding = finding_for(report, recipient)
        for status in MessageStatus:
            message = MessageFacts(MESSAGE_ID, "tnt_x", "gone@example.net", "req_x", status)
            effect = plan_effect(finding, message, report_id="rpt_x", matched_by="verp")
            json.dumps(dict(effect.event_data or {}))
            if finding.kind in (BounceKind.COMPLAINT, BounceKind.DELAYED):
                assert effect.new_status is None
            if effect.new_status is not None:
                assert effect.new_status is MessageStatus.BOUNCED
                assert effect.error_message


@given(st.binary(max_size=4000))
@settings(max_examples=300, deadline=None)
def test_analysis_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    analyse(raw)


@given(
    index=st.integers(min_value=0, max_value=len(_SAMPLES) - 1),
    cuts=st.lists(st.tuples(st.integers(0, 20_000), st.binary(max_size=40)), max_size=6),
    truncate=st.integers(min_value=0, max_value=40_000),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_analysis_never_raises_on_mutated_reports(
    index: int, cuts: list[tuple[int, bytes]], truncate: int
) -> None:
    raw = bytearray(_SAMPLES[index])
    for position, junk in cuts:
        at = position % (len(raw) + 1)
        raw[at : at + len(junk)] = junk
    analyse(bytes(raw[: truncate or None]))


# ---------------------------------------------------------------- the server core

_addresses = st.sampled_from(
    [
        "<>",
        f"<{VERP}>",
        "<fbl@bounces.example.com>",
        "<someone@example.org>",
        "<x@bounces.example.com.evil.example>",
        "<@relay.example:x@bounces.example.com>",
        '<"q@x"@bounces.example.com>',
        "<postmaster>",
        "",
    ]
)
_lines = st.one_of(
    st.sampled_from(
        [
            b"EHLO mx.example.net",
            b"HELO mx.example.net",
            b"DATA",
            b"RSET",
            b"NOOP",
            b"QUIT",
            b"STARTTLS",
            b"AUTH PLAIN AGFwaWtleQBzZWNyZXQ=",
            b"VRFY postmaster",
            b".",
            b"",
            b"Subject: x",
            b"Final-Recipient: rfc822; a@example.net",
        ]
    ),
    _addresses.map(lambda a: b"MAIL FROM:" + a.encode()),
    _addresses.map(lambda a: b"RCPT TO:" + a.encode()),
    st.binary(max_size=80),
)
_transactions = st.tuples(
    _addresses.map(lambda a: b"MAIL FROM:" + a.encode()),
    st.lists(_addresses.map(lambda a: b"RCPT TO:" + a.encode()), min_size=1, max_size=4),
    st.lists(_lines, max_size=6),
).map(lambda t: [t[0], *t[1], b"DATA", *t[2], b"."])
# Mostly well-formed conversations with noise: whole transactions, stray lines,
# and now and then a line ended wrongly.
_streams = st.tuples(
    st.booleans(),
    st.lists(st.one_of(_transactions, _lines.map(lambda line: [line])), max_size=12),
    st.lists(st.sampled_from([b"\r\n"] * 12 + [b"\n", b"\r", b""]), min_size=1),
).map(
    lambda t: (
        (b"EHLO mx.example.net\r\n" if t[0] else b"")
        + b"".join(
            line + t[2][i % len(t[2])]
            for i, line in enumerate(line for group in t[1] for line in group)
        )
    )
)


def _inbound_decisions(store_fails: list[bool]) -> Decide:
    """Answers as ``InboundPolicy`` does, with the store failing when told to."""
    failures = iter(store_fails)

    def decide(event: DecisionEvent) -> Reply | None:
        if isinstance(event, RcptTo):
            return rcpt_refusal(event.address, BOUNCE_DOMAINS)
        if isinstance(event, MessageData):
            return STORE_FAILED if next(failures, False) else None
        return None

    return decide


@given(data=_streams, chunk_size=st.integers(1, 64), store_fails=st.lists(st.booleans()))
@settings(max_examples=400, deadline=None)
def test_server_core_always_answers_and_never_relays(
    data: bytes, chunk_size: int, store_fails: list[bool]
) -> None:
    core = new_core(tls_available=True, limits=SmtpLimits(max_message_size=2000, max_errors=60))
    decide = _inbound_decisions(store_fails)
    transcripts = [drive(core, data, decide=decide, chunk_size=chunk_size)]
    # Whatever state the stream left: end its last line, end a message, say goodbye.
    # Each piece comes on its own, since what arrives together with STARTTLS is
    # dropped by design.
    for piece in (b"\r\n", b".\r\n", b"QUIT\r\n"):
        transcripts.append(drive(core, piece, decide=decide, eof=piece == b"QUIT\r\n"))
    replies = parse_replies(b"".join(t.output for t in transcripts))  # well-formed throughout
    assert replies[0].code == 220
    assert any(t.closed is not None for t in transcripts)
    assert replies[-1].code in (221, 421), replies[-1]
    for message in (m for t in transcripts for m in t.messages):
        assert message.envelope.recipients
        for recipient in message.envelope.recipients:
            assert bounce_domain_of(recipient) in BOUNCE_DOMAINS
