"""``/v3/scopes`` and ``/v3/auth/me``: what the calling key is and may do."""

from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires

blueprint = Blueprint("auth_me", __name__)


@blueprint.get("/v3/scopes")
@tag(["API keys"])
@requires(None)
async def my_scopes() -> dict[str, Any]:
    return {"scopes": sorted(principal().scopes)}


@blueprint.get("/v3/auth/me")
@tag(["API keys"])
@requires(None)
async def me() -> dict[str, Any]:
    caller = principal()
    tenant = await app_ctx().store.tenants.get(caller.tenant_id)
    return {
        "caller": {"type": "api_key", "api_key_id": caller.key_id, "name": caller.key_name},
        "tenant": {
            "id": caller.tenant_id,
            "name": tenant.name if tenant else None,
            "status": tenant.status if tenant else None,
        },
        "scopes": sorted(caller.scopes),
    }
