"""Webhooks: each receiver with its state, delivery log, test button and re-enable."""

from __future__ import annotations

from quart import Blueprint

from appliance.api.webhooks import MAX_WEBHOOKS, attempt_json, webhook_json
from appliance.domain.webhook_payloads import EVENT_TYPES, FORMATS
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_webhooks", __name__, url_prefix="/admin/webhooks")


@blueprint.get("")
@page("user.webhooks.event.settings.read")
async def webhook_list() -> PageResult:
    store = ctx().store.webhooks
    hooks = await store.list(session().tenant_id)
    pending = await store.pending()
    return await render(
        "webhooks/list.html",
        title="Webhooks",
        hooks=[webhook_json(h) for h in hooks],
        pending=pending,
        max_allowed=MAX_WEBHOOKS,
        event_types=EVENT_TYPES,
        formats=FORMATS,
    )


@blueprint.get("/<webhook_id>")
@page("user.webhooks.event.settings.read")
async def webhook_page(webhook_id: str) -> PageResult:
    store = ctx().store.webhooks
    hook = await store.get(session().tenant_id, webhook_id)
    if hook is None:
        return await render("not_found.html", title="Not found", what=f"webhook {webhook_id}"), 404
    attempts = await store.attempts(hook.id, 100)
    return await render(
        "webhooks/detail.html",
        title=hook.friendly_name or hook.url,
        hook=webhook_json(hook),
        attempts=[attempt_json(a) for a in attempts],
        pending=(await store.pending()).get(hook.id, 0),
        event_types=EVENT_TYPES,
    )
