"""``/api/admin/captures``: the capture mailbox, the messages a staging box kept.

In capture mode (``postyard serve --capture``) the delivery engine keeps
every outbound message here instead of delivering it. A key reads its own
tenant's captures with ``messages.read`` and deletes them with
``messages.delete``; another tenant's capture is answered 404, as if it did
not exist.

- ``GET ""``: newest first, ``limit`` (1 to 500, default 50), ``cursor``
  (``next_cursor`` of the previous page), ``to`` (exact recipient) and
  ``message_id`` (msg_…) filters; with the total count of the filter.
- ``GET /<id>``: the summary plus the decoded headers, text and HTML bodies
  and the attachments' names and sizes.
- ``GET /<id>/raw``: the message exactly as it would have gone on the wire
  (DKIM-signed), ``message/rfc822``.
- ``DELETE /<id>`` and ``DELETE ""`` (the whole mailbox of the tenant).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import trio
from quart import Blueprint, Response, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.domain.captured_mail import MailView, view_of
from appliance.store.captures import CapturedMessage, CaptureFilter

blueprint = Blueprint("captures", __name__, url_prefix="/api/admin/captures")

READ_SCOPE = "messages.read"
DELETE_SCOPE = "messages.delete"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def summary_json(c: CapturedMessage) -> dict[str, Any]:
    return {
        "id": c.id,
        "message_id": c.message_id,
        "from": c.mail_from,
        "to": c.rcpt_to,
        "subject": c.subject,
        "size": c.size,
        "captured_at": c.captured_at,
    }


def view_json(view: MailView) -> dict[str, Any]:
    return {
        "headers": [{"name": h.name, "value": h.value} for h in view.headers],
        "text": view.text,
        "html": view.html,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "disposition": a.disposition,
                "content_id": a.content_id,
            }
            for a in view.attachments
        ],
    }


def _encode_cursor(c: CapturedMessage) -> str:
    return base64.urlsafe_b64encode(f"{c.captured_at!r}|{c.id}".encode()).decode().rstrip("=")


def _decode_cursor(raw: str) -> tuple[float, int]:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        at, _, capture_id = text.partition("|")
        return float(at), int(capture_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("cursor is not one this API returned", "cursor") from None


def _limit() -> int:
    raw = request.args.get("limit", "")
    if raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    return int(raw)


def _capture_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise _not_found()
    return int(raw)


def _not_found() -> ApiError:
    return ApiError(404, "capture not found", "id", None)


async def _get(raw_id: str) -> CapturedMessage:
    found = await app_ctx().store.captures.get(principal().tenant_id, _capture_id(raw_id))
    if found is None:
        raise _not_found()
    return found


@blueprint.get("")
@tag(["Capture mailbox"])
@requires(READ_SCOPE)
async def list_captures() -> dict[str, Any]:
    """Captured messages, newest first; filters ``to``, ``message_id``; ``limit``, ``cursor``."""
    limit = _limit()
    cursor = request.args.get("cursor", "")
    before = _decode_cursor(cursor) if cursor else None
    filters = CaptureFilter(
        recipient=request.args.get("to") or None,
        message_id=request.args.get("message_id") or None,
    )
    store = app_ctx().store.captures
    tenant_id = principal().tenant_id
    found = await store.list(tenant_id, filters, limit=limit + 1, before=before)
    page = found[:limit]
    return {
        "captures": [summary_json(c) for c in page],
        "next_cursor": _encode_cursor(page[-1]) if len(found) > limit else None,
        "total": await store.count(tenant_id, filters),
        "capture_mode": app_ctx().config.capture_mode,
    }


@blueprint.get("/<capture_id>")
@tag(["Capture mailbox"])
@requires(READ_SCOPE)
async def get_capture(capture_id: str) -> dict[str, Any]:
    """One capture: headers, text and HTML bodies decoded, attachments' names and sizes."""
    found = await _get(capture_id)
    raw = await app_ctx().store.captures.raw(principal().tenant_id, found.id)
    if raw is None:  # deleted between the two reads
        raise _not_found()
    view = await trio.to_thread.run_sync(view_of, raw)  # a message may be tens of megabytes
    return {**summary_json(found), **view_json(view)}


@blueprint.get("/<capture_id>/raw")
@tag(["Capture mailbox"])
@requires(READ_SCOPE)
async def get_capture_raw(capture_id: str) -> Response:
    """The message exactly as it would have been sent (``message/rfc822``)."""
    raw = await app_ctx().store.captures.raw(principal().tenant_id, _capture_id(capture_id))
    if raw is None:
        raise _not_found()
    return Response(
        raw,
        content_type="message/rfc822",
        headers={
            "Content-Disposition": f'inline; filename="capture-{int(capture_id)}.eml"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@blueprint.delete("/<capture_id>")
@tag(["Capture mailbox"])
@requires(DELETE_SCOPE)
async def delete_capture(capture_id: str) -> tuple[str, int]:
    if not await app_ctx().store.captures.delete(principal().tenant_id, _capture_id(capture_id)):
        raise _not_found()
    return "", 204


@blueprint.delete("")
@tag(["Capture mailbox"])
@requires(DELETE_SCOPE)
async def delete_all_captures() -> dict[str, Any]:
    """Empty the tenant's mailbox; answers how many captures were deleted."""
    deleted = await app_ctx().store.captures.delete_all(principal().tenant_id)
    return {"deleted": deleted}
