"""API keys: create one with chosen scopes (its secret shown once), see its last use, revoke."""

from __future__ import annotations

from quart import Blueprint

from appliance.domain.roles import key_scopes, permission_groups
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_api_keys", __name__, url_prefix="/admin/api-keys")

PRESETS = {
    "mail.send": "Mail send only (for applications)",
    "full": "Full access (every scope you hold)",
    "custom": "Chosen scopes",
}


@blueprint.get("")
@page("api_keys.read")
async def key_list() -> PageResult:
    keys = await ctx().store.api_keys.for_tenant(session().tenant_id)
    grantable = key_scopes(session().permissions)
    return await render(
        "keys/list.html",
        title="API keys",
        keys=keys,
        scope_groups=permission_groups(grantable),
        can_send="mail.send" in grantable,
        presets=PRESETS,
    )
