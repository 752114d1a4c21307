"""``/v3/messages``: find messages, follow one through its timeline, retry or cancel it."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quart import Blueprint, request
from quart_schema import tag
from werkzeug.datastructures import MultiDict

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.domain.message_status import MessageStatus
from appliance.store.messages import Message, MessageFilter

blueprint = Blueprint("messages", __name__, url_prefix="/v3/messages")
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def summary_json(m: Message) -> dict[str, Any]:
    return {
        "msg_id": m.id,
        "x_message_id": m.request_id,
        "from_email": m.from_email,
        "to_email": m.recipient,
        "subject": m.subject,
        "status": m.status.value,
        "category": m.category,
        "batch_id": m.batch_id,
        "attempts": m.attempts,
        "created_at": m.created_at,
        "last_event_time": m.updated_at,
    }


def _time_arg(args: MultiDict[str, str], name: str) -> float | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise bad_request(
            f"{name} must be a Unix timestamp or an ISO 8601 time such as 2026-01-31T12:00:00Z",
            name,
        ) from None


def _encode_cursor(m: Message) -> str:
    return base64.urlsafe_b64encode(f"{m.created_at!r}|{m.id}".encode()).decode().rstrip("=")


def _decode_cursor(raw: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        created, _, message_id = text.partition("|")
        return float(created), message_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("cursor is not one this API returned", "cursor") from None


@dataclass(frozen=True, slots=True)
class MessageQuery:
    filters: MessageFilter
    limit: int
    cursor: tuple[float, str] | None


def message_query(args: MultiDict[str, str]) -> MessageQuery:
    """The search of ``GET /v3/messages`` (and the admin UI's message list) from its arguments;
    ApiError 400 naming the argument that is wrong."""
    status = None
    if args.get("status"):
        try:
            status = MessageStatus(args["status"].upper())
        except ValueError:
            raise bad_request(
                "status must be one of " + ", ".join(s.value for s in MessageStatus), "status"
            ) from None
    raw_limit = args.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    filters = MessageFilter(
        status=status,
        recipient=args.get("to_email") or args.get("recipient") or None,
        from_email=args.get("from_email") or None,
        category=args.get("category") or None,
        x_message_id=args.get("x_message_id") or None,
        created_after=_time_arg(args, "after"),
        created_before=_time_arg(args, "before"),
    )
    cursor = _decode_cursor(args["cursor"]) if args.get("cursor") else None
    return MessageQuery(filters, int(raw_limit), cursor)


async def find_messages(tenant_id: str, query: MessageQuery) -> tuple[list[Message], str | None]:
    """One page of messages, newest first, and the cursor of the next page."""
    found = await app_ctx().store.messages.search(
        tenant_id, query.filters, limit=query.limit + 1, before=query.cursor
    )
    page = found[: query.limit]
    return page, _encode_cursor(page[-1]) if len(found) > query.limit else None


@blueprint.get("")
@tag(["Messages"])
@requires("messages.read")
async def list_messages() -> dict[str, Any]:
    page, next_cursor = await find_messages(principal().tenant_id, message_query(request.args))
    return {"messages": [summary_json(m) for m in page], "next_cursor": next_cursor}


async def _get(message_id: str) -> Message:
    message = await app_ctx().store.messages.get(principal().tenant_id, message_id)
    if message is None:
        raise ApiError(404, "message not found", "msg_id", None)
    return message


@blueprint.get("/<message_id>")
@tag(["Messages"])
@requires("messages.read")
async def get_message(message_id: str) -> dict[str, Any]:
    return await detail_json(await _get(message_id))


async def detail_json(message: Message) -> dict[str, Any]:
    """A message with its last SMTP reply, next attempt and event timeline."""
    timeline = await app_ctx().store.messages.events_for(message.id)
    return {
        **summary_json(message),
        "error_message": message.error_message,
        "last_smtp_reply": message.last_reply,
        "next_attempt_at": message.due_at if message.status is MessageStatus.DEFERRED else None,
        "events": [e.payload() for e in timeline],
    }


async def _act(message_id: str, action: str) -> dict[str, Any]:
    store = app_ctx().store.messages
    actor = principal().actor
    tenant_id = principal().tenant_id
    if action == "retry":
        outcome = await store.retry(tenant_id, message_id, actor=actor)
    else:
        outcome = await store.cancel(tenant_id, message_id, actor=actor)
    if outcome.message is None:
        raise ApiError(404, "message not found", "msg_id", None)
    if outcome.refusal is not None:
        raise ApiError(409, outcome.refusal, "status", None)
    return summary_json(outcome.message)


@blueprint.post("/<message_id>/retry")
@tag(["Messages"])
@requires("messages.update")
async def retry_message(message_id: str) -> dict[str, Any]:
    return await _act(message_id, "retry")


@blueprint.post("/<message_id>/cancel")
@tag(["Messages"])
@requires("messages.update")
async def cancel_message(message_id: str) -> dict[str, Any]:
    return await _act(message_id, "cancel")
