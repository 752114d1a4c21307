"""Bounce and complaint reports: ``parse_bounce(raw) -> BounceReport``.

A pure function of the message bytes. It reads, in order of trust:

1. an RFC 5965 feedback report (or Microsoft's JMRP variant) → complaint;
2. an RFC 3464 ``message/delivery-status`` part → per-recipient results;
3. an automatic reply (vacation, out of office) → not a bounce;
4. the text of a non-standard bounce (see :mod:`bounce_heuristics`).

Garbage in gives ``not_a_bounce``, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email.message import Message
from enum import Enum
from typing import Any, Final

from appliance.domain.bounce_classification import BounceClass, classify_reported_failure
from appliance.protocols import bounce_mime
from appliance.protocols.arf import FeedbackReport, parse_feedback_report
from appliance.protocols.auto_reply import has_bounce_headers, has_bounce_wording, is_auto_reply
from appliance.protocols.bounce_heuristics import (
    ADDRESS_RE,
    findings_for,
    reply_code_in,
    report_section,
    scan_text_bounce,
    status_in,
)
from appliance.protocols.dsn import (
    DeliveryStatus,
    RecipientStatus,
    address_from_field,
    parse_delivery_status,
)
from appliance.protocols.smtp_reply import EnhancedStatus

_DSN_TYPES: Final = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ARF_TYPE: Final = "message/feedback-report"
_NOT_FAILED_ACTIONS: Final = frozenset({"delivered", "relayed", "expanded"})
_VERP_RE: Final = re.compile(r"\bbounces\+([A-Za-z0-9_.=-]+)@", re.IGNORECASE)
_VERP_HEADERS: Final = ("To", "Delivered-To", "X-Original-To", "Envelope-To")
_MESSAGE_ID_RE: Final = re.compile(r"<?([^<>\s]+@[^<>\s]+|[^<>\s]+)>?")
_DELAY_WORDING_RE: Final = re.compile(
    r"\bdelayed\b|will (?:continue|keep) (?:to )?(?:try|trying|retry)|not yet been delivered"
    r"|still undelivered|warning: could not send|will be retried|delivery delayed",
    re.IGNORECASE,
)
_TEXT_MAINTYPES: Final = frozenset({"text", "multipart"})  # multipart: a part whose MIME broke
_INLINE_DSN_RE: Final = re.compile(r"^[ \t]*final-recipient[ \t]*:", re.IGNORECASE | re.MULTILINE)
_JMRP_HEADER: Final = "X-HmXmrOriginalRecipient"
# A reply quoted inside another: ``<421 4.4.2 Connection timed out>``, ``550-'5.7.1 ...'``.
_NESTED_REPLY_RE: Final = re.compile(
    r"(?:[<'\"(]\s*[45]\d\d[ -]['\"]?|\b[45]\d\d[ -]['\"<(])\s*([45]\.\d{1,3}\.\d{1,3})\b"
)


class BounceKind(Enum):
    """What a report says happened."""

    HARD = "hard"
    SOFT = "soft"
    BLOCK = "block"
    COMPLAINT = "complaint"
    DELAYED = "delayed"
    NOT_A_BOUNCE = "not_a_bounce"

    @classmethod
    def from_class(cls, klass: BounceClass) -> BounceKind:
        return cls(klass.value)


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """One recipient of a report and what happened to it."""

    recipient: str  # the address we sent to: the DSN's Original-Recipient when given
    kind: BounceKind
    final_recipient: str | None = None
    status: str | None = None
    action: str | None = None
    diagnostic_code: str | None = None
    remote_mta: str | None = None


@dataclass(frozen=True, slots=True)
class BounceReport:
    """A parsed bounce, delay notice or complaint; the top-level fields are the first failure."""

    kind: BounceKind
    recipient: str | None = None
    status: str | None = None
    action: str | None = None
    diagnostic_code: str | None = None
    reporting_mta: str | None = None
    original_message_id: str | None = None
    postyard_message_id: str | None = None
    verp_message_id: str | None = None
    feedback_type: str | None = None
    recipients: tuple[RecipientReport, ...] = ()

    def to_json_dict(self, file: str) -> dict[str, Any]:
        """The public contract for one parsed file (null where absent)."""
        return {
            "file": file,
            "kind": self.kind.value,
            "recipient": self.recipient,
            "status": self.status,
            "action": self.action,
            "diagnostic_code": self.diagnostic_code,
            "reporting_mta": self.reporting_mta,
            "original_message_id": self.original_message_id,
        }


@dataclass(frozen=True, slots=True)
class _Keys:
    """Identifiers that tie a report back to the message we sent."""

    original_message_id: str | None
    postyard_message_id: str | None
    verp_message_id: str | None


def parse_bounce(raw: bytes) -> BounceReport:
    """Parse a bounce or complaint; anything unreadable is ``not_a_bounce``."""
    try:
        return _parse(bounce_mime.load(raw))
    except Exception:  # garbage from the Internet must never crash the inbound server
        return BounceReport(kind=BounceKind.NOT_A_BOUNCE)


def _parse(msg: Message) -> BounceReport:
    keys = _keys(msg)
    report = _read(msg)
    return replace(
        report,
        original_message_id=keys.original_message_id,
        postyard_message_id=keys.postyard_message_id,
        verp_message_id=keys.verp_message_id,
    )


def _read(msg: Message) -> BounceReport:
    parts = list(bounce_mime.report_parts(msg))
    text = "\n".join(
        bounce_mime.part_text(p)
        for p in parts
        if p.get_content_maintype() in _TEXT_MAINTYPES
        and p.get_content_type() != "text/rfc822-headers"
    )
    feedback = _feedback(msg, parts)
    if feedback is not None:
        return _complaint(msg, feedback)
    status = _delivery_status(parts) or _delivery_status(list(msg.walk())) or _inline_dsn(text)
    if status is not None and status.recipients:
        return _from_dsn(status, text)
    if not has_bounce_headers(msg) and (is_auto_reply(msg) or not has_bounce_wording(text)):
        return BounceReport(kind=BounceKind.NOT_A_BOUNCE)
    return _from_text(msg, text, status.reporting_mta if status else None)


def _keys(msg: Message) -> _Keys:
    original = bounce_mime.returned_original(msg)
    message_id = postyard_id = None
    if original is not None:
        message_id = original.get("Message-ID")
        postyard_id = original.get("X-Postyard-Message-Id")
    if message_id is None or postyard_id is None:
        body = "\n".join(
            bounce_mime.part_text(p)
            for p in msg.walk()
            if p.get_content_maintype() == "text" or p.get_content_type() in _DSN_TYPES
        )
        message_id = message_id or bounce_mime.inline_header(body, "Message-ID")
        postyard_id = postyard_id or bounce_mime.inline_header(body, "X-Postyard-Message-Id")
    verp = None
    for name in _VERP_HEADERS:
        for value in msg.get_all(name) or []:
            m = _VERP_RE.search(str(value))
            if m is not None and verp is None:
                verp = m.group(1)
    return _Keys(_clean_id(message_id), _clean_id(postyard_id), verp)


def _clean_id(value: object) -> str | None:
    if value is None:
        return None
    m = _MESSAGE_ID_RE.search(str(value).strip())
    return m.group(1) if m else None


def _feedback(msg: Message, parts: list[Message]) -> FeedbackReport | None:
    for part in parts:
        if part.get_content_type() == _ARF_TYPE:
            return parse_feedback_report(bounce_mime.part_text(part))
    original = bounce_mime.returned_original(msg)
    if original is not None and original.get(_JMRP_HEADER) is not None:
        recipient = address_from_field(str(original.get(_JMRP_HEADER)))
        return FeedbackReport("abuse", None, None, (recipient,) if recipient else (), None, None)
    return None


def _complaint(msg: Message, feedback: FeedbackReport) -> BounceReport:
    recipients = list(feedback.recipients)
    if not recipients:
        original = bounce_mime.returned_original(msg)
        to = bounce_mime.header(original, "To") if original is not None else ""
        recipients = [m.group(1).lower() for m in ADDRESS_RE.finditer(to)][:1]
    reports = tuple(RecipientReport(r, BounceKind.COMPLAINT) for r in recipients)
    return BounceReport(
        kind=BounceKind.COMPLAINT,
        recipient=recipients[0] if recipients else None,
        feedback_type=feedback.feedback_type,
        recipients=reports,
    )


def _delivery_status(parts: list[Message]) -> DeliveryStatus | None:
    for part in parts:
        if part.get_content_type() in _DSN_TYPES:
            return parse_delivery_status(bounce_mime.part_text(part))
    return None


def _inline_dsn(text: str) -> DeliveryStatus | None:
    """DSN fields pasted into the text (forwarded bounces, broken MIME), when they say enough."""
    if not _INLINE_DSN_RE.search(text):
        return None
    status = parse_delivery_status(text)
    if any(r.action or r.status for r in status.recipients):
        return status
    return None


def _classify(action: str | None, status: str | None, evidence: str, delayed: bool) -> BounceKind:
    if action == "delayed" or (action is None and delayed):
        return BounceKind.DELAYED
    if action in _NOT_FAILED_ACTIONS:
        return BounceKind.NOT_A_BOUNCE
    enhanced = EnhancedStatus.parse(status) if status else None
    code = reply_code_in(evidence)
    if enhanced is None or enhanced.detail == 0:
        # A generic status says less than the remote server's own reply.
        in_text = EnhancedStatus.search(evidence)
        if in_text is not None or (code is not None and enhanced is not None):
            enhanced = in_text
    return BounceKind.from_class(classify_reported_failure(code, enhanced, evidence))


def _from_dsn(status: DeliveryStatus, text: str) -> BounceReport:
    addresses = [r.final_recipient for r in status.recipients if r.final_recipient]
    findings = {f.recipient: f for f in findings_for(text, addresses) if f.diagnostic}
    reports = []
    for r in status.recipients:
        assert r.final_recipient is not None  # parse_delivery_status drops the rest
        finding = findings.get(r.final_recipient)
        evidence = " ".join(
            filter(
                None,
                [r.diagnostic_code, r.status_comment, finding.diagnostic if finding else None],
            )
        )
        if not evidence:
            evidence = report_section(text)
        reported = _reported_status(r, finding.status if finding else None)
        kind = _classify(r.action, reported, evidence, False)
        reports.append(_recipient_report(r, reported, kind))
    return _summarise(reports, status.reporting_mta)


def _reported_status(r: RecipientStatus, in_text: str | None) -> str | None:
    """The remote server's own enhanced code, where the report shows it.

    In order: the code of the innermost reply quoted in the diagnostic (a relay
    wrapping the remote server's answer: ``5.1.0 - Unknown address error
    550-'5.7.1 ... Access denied'``), the diagnostic's own code, then the DSN's
    Status field, unless that is a generic ``X.0.0`` and the human-readable part
    gives a specific code of the same class beside the address.
    """
    diagnostic = r.diagnostic_code or ""
    nested = [EnhancedStatus.parse(code) for code in _NESTED_REPLY_RE.findall(diagnostic)]
    if nested and nested[-1] is not None:
        return str(nested[-1])
    from_diagnostic = status_in(diagnostic)
    if from_diagnostic is not None:
        return from_diagnostic
    from_field = EnhancedStatus.parse(r.status) if r.status else None
    if from_field is None:
        return in_text
    generic = from_field.subject == 0 and from_field.detail == 0
    if generic and in_text is not None and in_text.startswith(f"{from_field.klass}."):
        return in_text
    return str(from_field)


def _recipient_report(r: RecipientStatus, status: str | None, kind: BounceKind) -> RecipientReport:
    assert r.final_recipient is not None
    return RecipientReport(
        recipient=r.original_recipient or r.final_recipient,
        kind=kind,
        final_recipient=r.final_recipient,
        status=status,
        action=r.action,
        diagnostic_code=r.diagnostic_code,
        remote_mta=r.remote_mta,
    )


def _from_text(msg: Message, text: str, reporting_mta: str | None) -> BounceReport:
    ignore = {
        m.group(1).lower()
        for name in ("From", "To", "Reply-To", "Sender", "Return-Path", "Cc")
        for m in ADDRESS_RE.finditer(bounce_mime.header(msg, name))
    }
    prefer = [
        m.group(1).lower()
        for value in msg.get_all("X-Failed-Recipients") or []
        for m in ADDRESS_RE.finditer(str(value))
    ]
    findings = list(scan_text_bounce(text, ignore=ignore))
    if prefer and not (findings and findings[0].rank == 0):
        findings = list(findings_for(text, prefer))
    section = report_section(text)
    delayed = _DELAY_WORDING_RE.search(section + " " + bounce_mime.header(msg, "Subject"))
    if not findings:
        original = bounce_mime.returned_original(msg)
        to = bounce_mime.header(original, "To") if original is not None else ""
        to = to or (bounce_mime.inline_header(text, "To") or "")
        fallback = [m.group(1).lower() for m in ADDRESS_RE.finditer(to)][:1]
        findings = list(findings_for(text, fallback))
    reports = []
    for f in findings:
        evidence = f.diagnostic if (f.code or f.status) else f"{f.diagnostic} {section}"
        status = f.status or status_in(section)
        kind = _classify(None, status, evidence, delayed is not None)
        diagnostic = f.diagnostic or None
        reports.append(RecipientReport(f.recipient, kind, f.recipient, status, None, diagnostic))
    if not reports:
        kind = _classify(None, status_in(section), section, delayed is not None)
        return BounceReport(kind=kind, reporting_mta=reporting_mta)
    return _summarise(reports, reporting_mta)


def _summarise(reports: list[RecipientReport], reporting_mta: str | None) -> BounceReport:
    failed = [r for r in reports if r.kind is not BounceKind.NOT_A_BOUNCE]
    first = failed[0] if failed else reports[0]
    return BounceReport(
        kind=first.kind,
        recipient=first.recipient,
        status=first.status,
        action=first.action,
        diagnostic_code=first.diagnostic_code,
        reporting_mta=reporting_mta,
        recipients=tuple(reports),
    )
