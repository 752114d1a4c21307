"""What one delivery attempt means for its message: row update, event, suppression.

The store applies a :class:`DeliveryOutcome` as it is (``store.queue``); the
functions that decide it from an SMTP reply or a connection failure are pure
and live here, so the rules can be read and tested in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.domain.message_status import MessageStatus


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    """A recipient to add to a suppression list because of an outcome."""

    list_name: str  # bounces | blocks | spam_reports | invalid_emails | unsubscribes
    reason: str
    status: str | None  # enhanced status code, e.g. "5.1.1"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    message_id: str
    tenant_id: str
    recipient: str
    status: MessageStatus  # DELIVERED | DEFERRED | BOUNCED
    attempts: int  # delivery attempts made, this one included
    due_at: float | None  # the next attempt, for DEFERRED
    last_reply: str | None  # the SMTP reply (or our description of the failure)
    error_message: str | None  # a sentence for the message page; None when delivered
    event_type: str  # delivered | deferred | bounce
    event_data: dict[str, Any]  # the event payload beyond the common fields
    suppression: SuppressionEntry | None = None
