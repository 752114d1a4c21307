"""The live event feed: the tenant's events as they happen, over the websocket stream."""

from __future__ import annotations

from quart import Blueprint

from appliance.domain.webhook_payloads import EVENT_TYPES
from appliance.ui.pages import PageResult, page, render

blueprint = Blueprint("ui_live", __name__, url_prefix="/admin/live")


@blueprint.get("")
@page("events.stream.read")
async def live_feed() -> PageResult:
    return await render("live.html", title="Live feed", event_types=EVENT_TYPES)
