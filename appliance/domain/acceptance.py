"""From a validated send request to the rows to write: pure, no I/O.

One message per (personalization, recipient); each gets its ``processed``
event, or a ``dropped`` event and status FAILED when the recipient is on a
suppression list that the request does not bypass (SendGrid's rules:
``bypass_list_management`` bypasses every list, the others their own).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.domain.ids import new_id
from appliance.domain.message_status import MessageStatus
from appliance.domain.send_request import MailSettings, SendRequest

GROUP_UNSUBSCRIBES = "group_unsubscribes"
"""Pseudo list: the address unsubscribed from the request's ASM group (``asm.group_id``)."""

# suppression list → (drop reason, the bypass flag that overrides it)
DROP_REASONS: Mapping[str, tuple[str, str | None]] = {
    "bounces": ("suppressed_bounce", "bypass_bounce_management"),
    "spam_reports": ("suppressed_spam_report", "bypass_spam_management"),
    "unsubscribes": ("suppressed_unsubscribe", "bypass_unsubscribe_management"),
    GROUP_UNSUBSCRIBES: ("suppressed_group_unsubscribe", "bypass_unsubscribe_management"),
    "invalid_emails": ("suppressed_invalid", None),
}
DROP_MESSAGES = {
    "suppressed_bounce": "Bounced Address",
    "suppressed_spam_report": "Spam Reporting Address",
    "suppressed_unsubscribe": "Unsubscribed Address",
    "suppressed_group_unsubscribe": "Unsubscribed Address",
    "suppressed_invalid": "Invalid",
}


def suppression_key(email: str) -> str:
    """The case-blind form suppression lists are keyed by."""
    try:
        return parse_address(email).key
    except InvalidAddressError:
        return email.strip().lower()


def recipient_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class NewMessage:
    id: str
    personalization: int
    recipient: str
    from_email: str
    subject: str | None
    status: MessageStatus
    due_at: float
    error_message: str | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str
    message_id: str
    event_type: str
    recipient: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AcceptancePlan:
    request_id: str
    messages: tuple[NewMessage, ...]
    events: tuple[NewEvent, ...]

    @property
    def dropped(self) -> int:
        return sum(1 for m in self.messages if m.status is MessageStatus.FAILED)


def drop_reason(lists: frozenset[str], settings: MailSettings) -> str | None:
    """The reason a recipient on ``lists`` is dropped, or None when it is sent to."""
    if settings.bypass_list_management:
        return None
    for list_name, (reason, bypass) in DROP_REASONS.items():
        if list_name in lists and not (bypass and getattr(settings, bypass)):
            return reason
    return None


def plan_acceptance(
    request: SendRequest,
    *,
    request_id: str,
    suppressed: Mapping[str, frozenset[str]],
    now: float,
) -> AcceptancePlan:
    """``suppressed`` maps suppression keys to the lists the address is on."""
    messages: list[NewMessage] = []
    events: list[NewEvent] = []
    categories = list(request.categories)
    for recipient in request.recipients():
        index = recipient.personalization_index
        email = recipient.address.email
        send_at = request.send_at_for(index)
        reason = drop_reason(
            suppressed.get(suppression_key(email), frozenset()), request.mail_settings
        )
        message_id = new_id("msg", now=now)
        messages.append(
            NewMessage(
                id=message_id,
                personalization=index,
                recipient=email,
                from_email=request.from_for(index).email,
                subject=request.subject_for(index),
                status=MessageStatus.FAILED if reason else MessageStatus.QUEUED,
                due_at=send_at.timestamp() if send_at else now,
                error_message=f"dropped: {DROP_MESSAGES[reason]}" if reason else None,
            )
        )
        data: dict[str, Any] = {"x_message_id": request_id}
        if categories:
            data["category"] = categories
        custom_args = dict(request.custom_args_for(index))
        if custom_args:
            data["custom_args"] = custom_args
        if reason:
            data["reason"] = reason
            data["reason_text"] = DROP_MESSAGES[reason]
        events.append(
            NewEvent(
                id=new_id("evt", now=now),
                message_id=message_id,
                event_type="dropped" if reason else "processed",
                recipient=email,
                data=data,
            )
        )
    return AcceptancePlan(request_id, tuple(messages), tuple(events))


def encode_event_data(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
