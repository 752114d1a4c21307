"""The pure rules of the inbound server: matching keys, effects on a message, relay refusal."""

from __future__ import annotations

import pytest

from appliance.domain.bounce_report import BounceKind, BounceReport, RecipientReport
from appliance.domain.inbound_outcome import (
    Finding,
    MatchKey,
    MessageFacts,
    finding_for,
    is_duplicate,
    match_keys,
    message_id_in_verp,
    plan_effect,
    smtp_response_in,
)
from appliance.domain.message_status import MessageStatus
from appliance.services.inbound import envelope_tenant, rcpt_refusal

MSG = "msg_01jab3cdefghjkmnpqrstvwxyz"
OTHER = "msg_01jab3cdefghjkmnpqrstvwxy0"


def _message(status: MessageStatus = MessageStatus.DELIVERED) -> MessageFacts:
    return MessageFacts(MSG, "tnt_a", "ann@example.org", "req_1", status)


def _finding(kind: BounceKind, **more: str | None) -> Finding:
    values: dict[str, str | None] = {
        "recipient": "ann@example.org",
        "status": "5.1.1",
        "action": "failed",
        "diagnostic_code": "smtp; 550 5.1.1 <ann@example.org>: User unknown",
        "reporting_mta": "dns; mx1.example.org",
    }
    values.update(more)
    return Finding(kind=kind, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (f"bounces+{MSG}@bounces.example.com", MSG),
        (f"Bounces+{MSG.upper()}@BOUNCES.example.com", MSG),
        (f"bounces@{MSG}.example.com", None),
        ("bounces+msg_short@bounces.example.com", None),
        (f"bounces+{MSG}", None),
        (f"other+{MSG}@bounces.example.com", None),
    ],
)
def test_message_id_in_verp(address: str, expected: str | None) -> None:
    assert message_id_in_verp(address) == expected


def test_match_keys_most_trusted_first_without_repeats() -> None:
    report = BounceReport(
        kind=BounceKind.HARD,
        verp_message_id=MSG,
        postyard_message_id=OTHER,
        original_message_id=f"{OTHER}@Mail.Example.COM",
    )
    keys = match_keys([f"bounces+{MSG}@bounces.example.com", "fbl@bounces.example.com"], report)
    assert keys == [MatchKey(MSG, "verp"), MatchKey(OTHER, "header")]

    by_message_id = match_keys(
        [], BounceReport(BounceKind.HARD, original_message_id=f"{OTHER}@Mail.Example.COM")
    )
    assert by_message_id == [MatchKey(OTHER, "message_id", "mail.example.com")]
    foreign = BounceReport(BounceKind.HARD, original_message_id="20240624.qmail@nq.example.jp")
    assert match_keys(["fbl@bounces.example.com"], foreign) == []


@pytest.mark.parametrize(
    ("diagnostic", "expected"),
    [
        ("smtp; 550 5.1.1 <a@b.example>: User unknown", "550 5.1.1 <a@b.example>: User unknown"),
        ("smtp;550-5.7.1 Blocked\n  by policy", "550-5.7.1 Blocked by policy"),
        (
            "host mx.example.org [192.0.2.25]: 553 5.1.1 unknown user",
            "553 5.1.1 unknown user",
        ),
        ("X-Postfix; delivery temporarily suspended", None),
        ("<userx@example.de>:", None),
        (None, None),
    ],
)
def test_smtp_response_in(diagnostic: str | None, expected: str | None) -> None:
    assert smtp_response_in(diagnostic) == expected


def test_hard_bounce_of_a_delivered_message() -> None:
    effect = plan_effect(
        _finding(BounceKind.HARD), _message(), report_id="rpt_1", matched_by="verp"
    )
    assert effect.event_type == "bounce"
    assert effect.new_status is MessageStatus.BOUNCED
    data = dict(effect.event_data or {})
    assert data["bounce_type"] == "hard"
    assert data["bounce_reason"] == "<ann@example.org>: User unknown"
    assert data["smtp_response"] == "550 5.1.1 <ann@example.org>: User unknown"
    assert data["status"] == "5.1.1"
    assert data["x_message_id"] == "req_1"
    assert data["metadata"] == {
        "diagnostic_code": "smtp; 550 5.1.1 <ann@example.org>: User unknown",
        "reporting_mta": "dns; mx1.example.org",
        "source": "dsn",
        "report_id": "rpt_1",
        "matched_by": "verp",
    }
    assert effect.error_message is not None
    assert effect.error_message.startswith(
        "mx1.example.org reported that the message to ann@example.org bounced after it had "
        'been accepted (5.1.1), saying "<ann@example.org>: User unknown"'
    )
    assert "/v3/suppression/bounces" in effect.error_message
    assert effect.suppression is not None and effect.suppression.list_name == "bounces"
    assert effect.last_reply == "550 5.1.1 <ann@example.org>: User unknown"


@pytest.mark.parametrize(
    ("kind", "list_name"),
    [(BounceKind.HARD, "bounces"), (BounceKind.BLOCK, "blocks"), (BounceKind.SOFT, None)],
)
def test_suppression_list_by_bounce_kind(kind: BounceKind, list_name: str | None) -> None:
    effect = plan_effect(_finding(kind), _message(), report_id="r", matched_by="verp")
    assert (effect.suppression.list_name if effect.suppression else None) == list_name


@pytest.mark.parametrize(
    "status", [MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.CANCELLED]
)
def test_bounce_keeps_a_message_that_already_ended_undelivered(status: MessageStatus) -> None:
    effect = plan_effect(
        _finding(BounceKind.HARD), _message(status), report_id="r", matched_by="verp"
    )
    assert effect.event_type == "bounce" and effect.new_status is None
    assert effect.suppression is not None


def test_complaint_and_delay_leave_the_status_alone() -> None:
    complaint = plan_effect(
        _finding(BounceKind.COMPLAINT, status=None, diagnostic_code=None),
        _message(),
        report_id="r",
        matched_by="header",
    )
    assert complaint.event_type == "spamreport" and complaint.new_status is None
    assert complaint.suppression is not None
    assert complaint.suppression.list_name == "spam_reports"
    assert (complaint.event_data or {})["metadata"]["source"] == "arf"
    delayed = plan_effect(
        _finding(BounceKind.DELAYED, status="4.4.7", diagnostic_code="smtp; 451 4.4.1 timeout"),
        _message(),
        report_id="r",
        matched_by="verp",
    )
    assert delayed.event_type == "deferred" and delayed.new_status is None
    assert delayed.suppression is None
    assert (delayed.event_data or {})["smtp_response"] == "451 4.4.1 timeout"
    nothing = plan_effect(
        _finding(BounceKind.NOT_A_BOUNCE), _message(), report_id="r", matched_by="verp"
    )
    assert nothing.event_type is None and nothing.suppression is None


def test_duplicates() -> None:
    bounce = plan_effect(_finding(BounceKind.HARD), _message(), report_id="r", matched_by="verp")
    assert is_duplicate(bounce, [("bounce", {"status": "5.1.1"})])
    assert not is_duplicate(bounce, [("bounce", {"status": "5.2.2"}), ("spamreport", {})])
    complaint = plan_effect(
        _finding(BounceKind.COMPLAINT), _message(), report_id="r", matched_by="verp"
    )
    assert is_duplicate(complaint, [("spamreport", {})])
    assert not is_duplicate(complaint, [("bounce", {"status": "5.1.1"})])


def test_finding_is_about_the_message_recipient() -> None:
    report = BounceReport(
        kind=BounceKind.HARD,
        recipient="first@example.org",
        status="5.1.1",
        reporting_mta="mx.example.org",
        recipients=(
            RecipientReport("first@example.org", BounceKind.HARD, status="5.1.1"),
            RecipientReport("Ann@Example.org", BounceKind.SOFT, status="4.2.2"),
        ),
    )
    ann = finding_for(report, "ann@example.org")
    assert (ann.kind, ann.status, ann.reporting_mta) == (BounceKind.SOFT, "4.2.2", "mx.example.org")
    assert finding_for(report, "nobody@example.org").recipient == "first@example.org"
    assert finding_for(report, None).kind is BounceKind.HARD


def test_rcpt_refusal_accepts_only_bounce_domains() -> None:
    domains = {"bounces.example.com": "tnt_a", "bounces.other.example": "tnt_b"}
    assert rcpt_refusal(f"bounces+{MSG}@Bounces.Example.COM", domains) is None
    assert rcpt_refusal("fbl@bounces.example.com", domains) is None
    refusal = rcpt_refusal("x@example.com", domains)
    assert refusal is not None and (refusal.code, str(refusal.enhanced)) == (550, "5.7.1")
    assert "relay access denied" in refusal.text and "bounce domains" in refusal.text
    assert rcpt_refusal("postmaster", domains) is not None
    assert envelope_tenant(["a@bounces.example.com", "b@BOUNCES.example.com"], domains) == "tnt_a"
    assert envelope_tenant(["a@bounces.example.com", "b@bounces.other.example"], domains) is None
