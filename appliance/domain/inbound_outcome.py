"""What an inbound report means for the message it is about: event, status, suppression.

Pure rules, applied by ``store.inbound_reports`` inside one transaction:

- :func:`match_keys` lists the ways a report may name one of our messages, most
  trusted first: the VERP envelope recipient ``bounces+<message id>@…``, the
  ``X-Postyard-Message-Id`` header of the returned original, then its
  ``Message-ID`` (``<message id@sender domain>``, see ``protocols.mime``).
- :func:`finding_for` picks what the report says about the message's recipient.
- :func:`plan_effect` turns that into the event to record (``bounce``,
  ``spamreport`` or ``deferred``), the message's new status with a sentence
  saying what the report said, and the suppression entry to add.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from appliance.domain.bounce_report import BounceKind, BounceReport, RecipientReport
from appliance.domain.delivery_outcome import SuppressionEntry
from appliance.domain.message_status import MessageStatus

# Our message ids (``domain.ids``): "msg_" and 26 Crockford base32 characters.
_MESSAGE_ID_RE: Final = re.compile(r"msg_[0-9a-hjkmnp-tv-z]{26}")
_VERP_PREFIX: Final = "bounces+"
_SMTP_REPLY_RE: Final = re.compile(r"(?<!\d)[45]\d\d(?:[ -].*)?$", re.DOTALL)
_REPLY_CODES_RE: Final = re.compile(r"^[245]\d\d[ -]+(?:[245]\.\d{1,3}\.\d{1,3}[ -]+)?")

BOUNCE_KINDS: Final = frozenset({BounceKind.HARD, BounceKind.SOFT, BounceKind.BLOCK})
# A bounce does not overwrite these: the message already ended without delivery.
_KEEPS_STATUS: Final = frozenset(
    {MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.CANCELLED}
)
_LIST_FOR: Final[Mapping[BounceKind, str]] = {
    BounceKind.HARD: "bounces",
    BounceKind.BLOCK: "blocks",
    BounceKind.COMPLAINT: "spam_reports",
}
_MEANING: Final[Mapping[BounceKind, str]] = {
    BounceKind.HARD: "the recipient address cannot receive mail",
    BounceKind.SOFT: "a temporary failure that lasted until the receiving servers gave up",
    BounceKind.BLOCK: "the receiver refused mail from us (policy, reputation or content)",
}
_ADVICE: Final[Mapping[BounceKind, str]] = {
    BounceKind.HARD: (
        "the address was added to the bounce list; check it, and delete it from "
        "/v3/suppression/bounces to send to it again"
    ),
    BounceKind.BLOCK: (
        "the address was added to the blocks list; check the sending domain's SPF, DKIM and "
        "DMARC records and the sending address's reputation, then delete it from "
        "/v3/suppression/blocks to try again"
    ),
    BounceKind.SOFT: "the address was not suppressed, so a later send will try again",
}


class MatchedBy:
    VERP = "verp"
    HEADER = "header"
    MESSAGE_ID = "message_id"


@dataclass(frozen=True, slots=True)
class MatchKey:
    """One way a report names a message; ``domain`` (for a Message-ID) must be the
    domain of the message's sender, as our Message-IDs are ``<id@sender domain>``."""

    message_id: str
    matched_by: str
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """What a report says about one recipient."""

    kind: BounceKind
    recipient: str | None
    status: str | None
    action: str | None
    diagnostic_code: str | None
    reporting_mta: str | None
    remote_mta: str | None = None
    feedback_type: str | None = None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """The message a report was matched to, as plain values (not a store row)."""

    id: str
    tenant_id: str
    recipient: str
    request_id: str
    status: MessageStatus


@dataclass(frozen=True, slots=True)
class ReportEffect:
    """What recording a report does to its message; all None/empty: nothing."""

    event_type: str | None = None  # bounce | spamreport | deferred
    event_data: Mapping[str, Any] | None = None
    new_status: MessageStatus | None = None
    error_message: str | None = None
    last_reply: str | None = None
    suppression: SuppressionEntry | None = None


def message_id_in_verp(address: str) -> str | None:
    """``bounces+msg_…@bounces.example.com`` → ``msg_…`` (None for any other address)."""
    local, at, _ = address.rpartition("@")
    if not at or not local.lower().startswith(_VERP_PREFIX):
        return None
    return _our_id(local[len(_VERP_PREFIX) :])


def match_keys(envelope_to: Iterable[str], report: BounceReport) -> list[MatchKey]:
    """Every key naming a message, most trusted first, without repeats."""
    keys: list[MatchKey] = []
    for address in envelope_to:
        found = message_id_in_verp(address)
        if found is not None:
            keys.append(MatchKey(found, MatchedBy.VERP))
    if report.verp_message_id is not None:  # the bounce's own To: header
        found = _our_id(report.verp_message_id)
        if found is not None:
            keys.append(MatchKey(found, MatchedBy.VERP))
    if report.postyard_message_id is not None:
        found = _our_id(report.postyard_message_id)
        if found is not None:
            keys.append(MatchKey(found, MatchedBy.HEADER))
    if report.original_message_id is not None:
        local, at, domain = report.original_message_id.rpartition("@")
        found = _our_id(local) if at else None
        if found is not None and domain:
            keys.append(MatchKey(found, MatchedBy.MESSAGE_ID, domain.lower().rstrip(".")))
    unique: list[MatchKey] = []
    seen: set[str] = set()
    for key in keys:
        if key.message_id not in seen:
            seen.add(key.message_id)
            unique.append(key)
    return unique


def _our_id(text: str) -> str | None:
    candidate = text.strip().lower()
    return candidate if _MESSAGE_ID_RE.fullmatch(candidate) else None


def finding_for(report: BounceReport, recipient: str | None) -> Finding:
    """The report's result for ``recipient`` when it lists it, else its first failure."""
    chosen: RecipientReport | None = None
    if recipient is not None and report.recipients:
        wanted = recipient.casefold()
        for r in report.recipients:
            if r.recipient.casefold() == wanted or (r.final_recipient or "").casefold() == wanted:
                chosen = r
                break
    if chosen is None:
        return Finding(
            kind=report.kind,
            recipient=report.recipient,
            status=report.status,
            action=report.action,
            diagnostic_code=report.diagnostic_code,
            reporting_mta=report.reporting_mta,
            remote_mta=report.recipients[0].remote_mta if report.recipients else None,
            feedback_type=report.feedback_type,
        )
    return Finding(
        kind=chosen.kind,
        recipient=chosen.recipient,
        status=chosen.status,
        action=chosen.action,
        diagnostic_code=chosen.diagnostic_code,
        reporting_mta=report.reporting_mta,
        remote_mta=chosen.remote_mta,
        feedback_type=report.feedback_type,
    )


def smtp_response_in(diagnostic_code: str | None) -> str | None:
    """The remote server's reply in a Diagnostic-Code (``smtp; 550 5.1.1 …`` → ``550 5.1.1 …``)."""
    if not diagnostic_code:
        return None
    kind, sep, rest = diagnostic_code.partition(";")
    text = rest if sep and kind.strip().lower() in ("smtp", "x-postfix", "x-unix") else ""
    text = " ".join((text or diagnostic_code).split())
    match = _SMTP_REPLY_RE.search(text)
    return match.group(0) if match else None


def plan_effect(
    finding: Finding, message: MessageFacts, *, report_id: str, matched_by: str
) -> ReportEffect:
    """The event, status change and suppression a report matched to ``message`` makes."""
    metadata: dict[str, Any] = {
        "diagnostic_code": finding.diagnostic_code,
        "reporting_mta": finding.reporting_mta,
        "source": "arf" if finding.kind is BounceKind.COMPLAINT else "dsn",
        "report_id": report_id,
        "matched_by": matched_by,
    }
    if finding.remote_mta:
        metadata["remote_mta"] = finding.remote_mta
    smtp_response = smtp_response_in(finding.diagnostic_code)
    common = {"x_message_id": message.request_id, "metadata": metadata}
    if finding.kind is BounceKind.COMPLAINT:
        return ReportEffect(
            event_type="spamreport",
            event_data={"feedback_type": finding.feedback_type, **common},
            suppression=SuppressionEntry("spam_reports", _complaint_reason(finding, message), None),
        )
    if finding.kind is BounceKind.DELAYED:
        return ReportEffect(
            event_type="deferred",
            event_data={
                "reason": _reason(finding, smtp_response) or "delivery delayed",
                "smtp_response": smtp_response,
                "status": finding.status,
                **common,
            },
        )
    if finding.kind not in BOUNCE_KINDS:
        return ReportEffect()
    list_name = _LIST_FOR.get(finding.kind)
    said = _reason(finding, smtp_response)
    sentence = _bounce_sentence(finding, message, said)
    return ReportEffect(
        event_type="bounce",
        event_data={
            "bounce_type": finding.kind.value,
            "bounce_reason": said or _MEANING[finding.kind],
            "smtp_response": smtp_response,
            "status": finding.status,
            **common,
        },
        new_status=None if message.status in _KEEPS_STATUS else MessageStatus.BOUNCED,
        error_message=sentence,
        last_reply=smtp_response or finding.diagnostic_code,
        suppression=(
            SuppressionEntry(list_name, said or sentence, finding.status)
            if list_name is not None
            else None
        ),
    )


def is_duplicate(effect: ReportEffect, existing: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
    """Whether the message already has this outcome: a bounce with the same status
    (from a report or from delivery), or any complaint. ``existing``: (type, data)."""
    if effect.event_type == "spamreport":
        return any(event_type == "spamreport" for event_type, _ in existing)
    if effect.event_type == "bounce":
        status = (effect.event_data or {}).get("status")
        return any(t == "bounce" and data.get("status") == status for t, data in existing)
    return False


def report_json(report: BounceReport) -> dict[str, Any]:
    """Everything the parser found, as JSON-ready values (kept with the report)."""
    data = asdict(report)
    data["kind"] = report.kind.value
    for r in data["recipients"]:
        r["kind"] = r["kind"].value
    return data


def _reason(finding: Finding, smtp_response: str | None) -> str | None:
    """The receiver's words: its reply without codes, else the diagnostic as given."""
    if smtp_response:
        text = _REPLY_CODES_RE.sub("", smtp_response).strip()
        if text:
            return text
    if finding.diagnostic_code:
        _, sep, rest = finding.diagnostic_code.partition(";")
        text = " ".join((rest if sep else finding.diagnostic_code).split())
        return text or None
    return None


def _bounce_sentence(finding: Finding, message: MessageFacts, said: str | None) -> str:
    who = _host(finding.reporting_mta) or _host(finding.remote_mta) or "a receiving server"
    after = " after it had been accepted" if message.status is MessageStatus.DELIVERED else ""
    codes = f" ({finding.status})" if finding.status else ""
    what = f'"{said}"' if said else "no reason"
    return (
        f"{who} reported that the message to {message.recipient} bounced{after}{codes}, "
        f"saying {what}: {_MEANING[finding.kind]}; {_ADVICE[finding.kind]}"
    )


def _complaint_reason(finding: Finding, message: MessageFacts) -> str:
    kind = f" ({finding.feedback_type})" if finding.feedback_type else ""
    return f"{message.recipient} reported message {message.id} as spam{kind}"


def _host(mta: str | None) -> str | None:
    """``dns; mx1.example.com`` → ``mx1.example.com``."""
    if not mta:
        return None
    _, sep, rest = mta.partition(";")
    return (rest if sep else mta).strip() or None
