"""RFC 3464 delivery status notifications: the ``message/delivery-status`` body.

The body is one block of per-message fields, then one block of fields per
recipient, blocks separated by blank lines, each field in RFC 5322 header
syntax. Real reports bend that: missing blank lines, indented fields,
recipients without ``Final-Recipient``. This reader is tolerant: it never
raises, and starts a new recipient whenever a recipient field repeats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_FIELD_RE: Final = re.compile(r"^[ \t]*([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_ADDRESS_IN_FIELD_RE: Final = re.compile(r"<?([^\s<>;\"]+@[^\s<>;\"]+?)>?\.?$")
_PER_RECIPIENT: Final = frozenset(
    {
        "original-recipient",
        "final-recipient",
        "action",
        "status",
        "remote-mta",
        "diagnostic-code",
        "last-attempt-date",
        "final-log-id",
        "will-retry-until",
        "x-actual-recipient",
    }
)


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """The per-recipient fields of a DSN (RFC 3464 §2.3)."""

    final_recipient: str | None
    original_recipient: str | None
    action: str | None
    status: str | None
    status_comment: str | None
    diagnostic_code: str | None
    remote_mta: str | None


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A parsed ``message/delivery-status`` body."""

    reporting_mta: str | None
    recipients: tuple[RecipientStatus, ...]


def address_from_field(value: str | None) -> str | None:
    """``"rfc822; <User@Example.com>"`` → ``"user@example.com"``; None if no address."""
    if not value:
        return None
    _, sep, rest = value.partition(";")
    text = (rest if sep else value).strip()
    text = text.strip("<>\"' \t")
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.rindex(">")]
    m = _ADDRESS_IN_FIELD_RE.search(text.strip())
    if m is None:
        return None
    address = m.group(1).strip("<>.,'\"").lower()
    return address if "@" in address and not address.startswith("@") else None


def mta_from_field(value: str | None) -> str | None:
    """``"dns; mx.example.com"`` → ``"mx.example.com"``."""
    if not value:
        return None
    _, sep, rest = value.partition(";")
    name = (rest if sep else value).strip().split()
    return name[0].strip("[]<>") if name else None


def _blocks(text: str) -> list[list[tuple[str, str]]]:
    """Blocks of ``(lowercased name, value)`` fields, continuation lines unfolded."""
    blocks: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        block = blocks[-1]
        if not line.strip():
            if block:
                blocks.append([])
            continue
        m = _FIELD_RE.match(line)
        folded = line[:1] in (" ", "\t") and block and block[-1][0] == "diagnostic-code"
        if (m is None or folded) and block:
            name, value = block[-1]
            block[-1] = (name, f"{value} {line.strip()}".strip())
        elif m is not None:
            block.append((m.group(1).lower(), m.group(2).strip()))
    return [b for b in blocks if b]


def _recipient(fields: dict[str, str]) -> RecipientStatus:
    final = address_from_field(fields.get("final-recipient")) or address_from_field(
        fields.get("x-actual-recipient")
    )
    original = address_from_field(fields.get("original-recipient"))
    action = fields.get("action", "").strip().lower().split(" ")[0] or None
    status_text = fields.get("status", "").strip()
    status = status_text.split()[0] if status_text else None
    return RecipientStatus(
        final_recipient=final or original,
        original_recipient=original,
        action=action,
        status=status,
        status_comment=status_text[len(status or "") :].strip(" ()") or None,
        diagnostic_code=fields.get("diagnostic-code") or None,
        remote_mta=mta_from_field(fields.get("remote-mta")),
    )


def parse_delivery_status(text: str) -> DeliveryStatus:
    """Read a ``message/delivery-status`` body; recipients without any address are dropped."""
    per_message: dict[str, str] = {}
    groups: list[dict[str, str]] = []
    for block in _blocks(text):
        current: dict[str, str] | None = None
        for name, value in block:
            if name not in _PER_RECIPIENT:
                per_message.setdefault(name, value)
                continue
            if current is None or name in current:
                current = {}
                groups.append(current)
            current[name] = value
    recipients = tuple(r for r in (_recipient(g) for g in groups) if r.final_recipient is not None)
    return DeliveryStatus(
        reporting_mta=mta_from_field(per_message.get("reporting-mta")),
        recipients=recipients,
    )
