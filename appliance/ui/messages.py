"""Messages: search by recipient, status, category and time; one message's whole story."""

from __future__ import annotations

import time

from quart import Blueprint, Response, request

from appliance.api.errors import ApiError
from appliance.api.messages import detail_json, find_messages, message_query, summary_json
from appliance.domain.message_status import MessageStatus, cancel_refusal, retry_refusal
from appliance.services.composer import ComposeError, Composer
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_messages", __name__, url_prefix="/admin/messages")

FILTER_ARGS = ("to_email", "status", "category", "from_email", "x_message_id", "after", "before")


@blueprint.get("")
@page("messages.read")
async def message_list() -> PageResult:
    args = request.args
    error = None
    found: list[dict[str, object]] = []
    next_cursor = None
    try:
        page_, next_cursor = await find_messages(session().tenant_id, message_query(args))
        found = [summary_json(m) for m in page_]
    except ApiError as exc:
        error = exc.errors[0]
    kept = {name: args.get(name, "") for name in FILTER_ARGS}
    return await render(
        "messages/list.html",
        title="Messages",
        messages=found,
        next_cursor=next_cursor,
        error=error,
        filters=kept,
        statuses=[s.value for s in MessageStatus],
    )


@blueprint.get("/<message_id>")
@page("messages.read")
async def message_page(message_id: str) -> PageResult:
    message = await ctx().store.messages.get(session().tenant_id, message_id)
    if message is None:
        return await render("not_found.html", title="Not found", what=f"message {message_id}"), 404
    detail = await detail_json(message)
    return await render(
        "messages/detail.html",
        title=f"Message {message.id}",
        m=detail,
        retry_refusal=retry_refusal(
            message.status,
            lease_expired=message.lease_until is not None and message.lease_until < time.time(),
        ),
        cancel_refusal=cancel_refusal(message.status),
        now=time.time(),
    )


@blueprint.get("/<message_id>/mime")
@page("messages.read")
async def message_mime(message_id: str) -> PageResult:
    """The message as it is sent: rendered and DKIM-signed now, like ``postyard render``."""
    message = await ctx().store.messages.get(session().tenant_id, message_id)
    if message is None:
        return Response("no such message\n", status=404, content_type="text/plain")
    try:
        composed = await Composer(ctx()).compose(message, now=time.time())
    except ComposeError as exc:
        return Response(
            f"cannot render {message.id}: {exc}\n",
            status=422,
            content_type="text/plain; charset=utf-8",
        )
    head = f"# envelope from: {composed.envelope_from}\n# envelope to:   {composed.recipient}\n"
    return Response(head.encode() + composed.data, content_type="text/plain; charset=utf-8")
