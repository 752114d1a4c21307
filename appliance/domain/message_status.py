"""Message statuses and which operator actions each allows."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    RENDERED = "RENDERED"
    SENDING = "SENDING"
    DELIVERED = "DELIVERED"
    DEFERRED = "DEFERRED"
    BOUNCED = "BOUNCED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


CLAIMABLE = frozenset({MessageStatus.QUEUED, MessageStatus.DEFERRED})
IN_FLIGHT = frozenset({MessageStatus.PROCESSING, MessageStatus.RENDERED, MessageStatus.SENDING})
TERMINAL = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.CANCELLED}
)

# A retry puts the message back in the queue now. In-flight messages qualify only
# once their lease has expired (a crashed node): see ``retry_refusal``.
RETRYABLE = frozenset(
    {MessageStatus.FAILED, MessageStatus.BOUNCED, MessageStatus.DEFERRED, MessageStatus.CANCELLED}
)
CANCELLABLE = frozenset({MessageStatus.QUEUED, MessageStatus.DEFERRED})


def retry_refusal(status: MessageStatus, *, lease_expired: bool) -> str | None:
    """Why a retry is not allowed now, or None when it is."""
    if status in RETRYABLE or (status in IN_FLIGHT and lease_expired):
        return None
    if status is MessageStatus.QUEUED:
        return "message is already QUEUED and will be sent when due"
    if status in IN_FLIGHT:
        return f"message is {status} and a delivery attempt is in progress"
    return f"message is {status}; a delivered message cannot be sent again"


def cancel_refusal(status: MessageStatus) -> str | None:
    """Why a cancel is not allowed now, or None when it is."""
    if status in CANCELLABLE:
        return None
    if status in IN_FLIGHT:
        return f"message is {status}: it is being sent and can no longer be cancelled"
    return f"message is {status} and can no longer be cancelled"
