"""RFC 5965 abuse feedback reports: the ``message/feedback-report`` body.

The body is a single block of fields in header syntax. ``Original-Rcpt-To``
may repeat (one per reported recipient); ``Removal-Recipient`` is the
opt-out variant some providers send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from appliance.protocols.dsn import address_from_field

_FIELD_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_RECIPIENT_FIELDS: Final = ("original-rcpt-to", "removal-recipient")


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """The fields of a feedback report that matter to a sender."""

    feedback_type: str | None
    user_agent: str | None
    original_mail_from: str | None
    recipients: tuple[str, ...]
    reported_domain: str | None
    source_ip: str | None


def parse_feedback_report(text: str) -> FeedbackReport:
    """Read a ``message/feedback-report`` body; unknown or broken lines are skipped."""
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        m = _FIELD_RE.match(line.strip())
        if m is not None:
            fields.append((m.group(1).lower(), m.group(2).strip()))

    def first(name: str) -> str | None:
        return next((value for key, value in fields if key == name and value), None)

    recipients: list[str] = []
    for key, value in fields:
        if key in _RECIPIENT_FIELDS:
            address = address_from_field(value)
            if address is not None and address not in recipients:
                recipients.append(address)
    feedback_type = first("feedback-type")
    return FeedbackReport(
        feedback_type=feedback_type.lower() if feedback_type else None,
        user_agent=first("user-agent"),
        original_mail_from=address_from_field(first("original-mail-from")),
        recipients=tuple(recipients),
        reported_domain=first("reported-domain"),
        source_ip=first("source-ip"),
    )
