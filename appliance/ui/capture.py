"""The capture mailbox (``postyard serve --capture``): mail kept instead of delivered."""

from __future__ import annotations

from quart import Blueprint, request

from appliance.domain.captured_mail import view_of
from appliance.store.captures import CaptureFilter
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_capture", __name__, url_prefix="/admin/capture")
PAGE_SIZE = 50


@blueprint.get("")
@page("messages.read")
async def mailbox() -> PageResult:
    wanted = CaptureFilter(recipient=request.args.get("to") or None, message_id=None)
    store = ctx().store.captures
    captures = await store.list(session().tenant_id, wanted, limit=PAGE_SIZE)
    total = await store.count(session().tenant_id, wanted)
    return await render(
        "capture/list.html",
        title="Capture mailbox",
        captures=captures,
        total=total,
        to=request.args.get("to", ""),
        capture_mode=ctx().config.capture_mode,
    )


@blueprint.get("/<int:capture_id>")
@page("messages.read")
async def captured(capture_id: int) -> PageResult:
    store = ctx().store.captures
    item = await store.get(session().tenant_id, capture_id)
    raw = await store.raw(session().tenant_id, capture_id)
    if item is None or raw is None:
        return await render("not_found.html", title="Not found", what=f"capture {capture_id}"), 404
    return await render(
        "capture/detail.html",
        title=item.subject or "(no subject)",
        item=item,
        view=view_of(raw),
    )
