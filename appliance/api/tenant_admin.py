"""``POST /api/admin/tenants/{tenant_id}/reinstate``: an operator lifts a suspension.

A suspended tenant's own keys are refused everywhere (403), so the lift must
come from an operator. Until operator roles exist (issue 7), "operator" is a
key holding ``relays.update``: relays, like this, are appliance-wide operator
settings (the same stand-in ``inbound_reports`` uses for ``relays.read``).
The key's tenant must be another, active one, which it is by construction.
The reinstatement is recorded as a ``reputation_reinstated`` event; the
reputation guard then judges only the tenant's traffic after it.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError

blueprint = Blueprint("tenant_admin", __name__, url_prefix="/api/admin/tenants")

OPERATOR_SCOPE = "relays.update"


@blueprint.post("/<tenant_id>/reinstate")
@requires(OPERATOR_SCOPE)
async def reinstate(tenant_id: str) -> tuple[dict[str, Any], int]:
    caller = principal()
    store = app_ctx().store
    done = await store.reputation.reinstate(
        tenant_id, by=f"{caller.actor} of {caller.tenant_id}", now=time.time()
    )
    if done is None:
        raise ApiError(404, f"no tenant {tenant_id}", "tenant_id", "see `postyard tenant list`")
    tenant = await store.tenants.get(tenant_id)
    assert tenant is not None
    if not done:
        raise ApiError(
            409,
            f"tenant {tenant_id} is not suspended (status {tenant.status}); nothing to lift",
            "tenant_id",
        )
    return {"id": tenant.id, "name": tenant.name, "status": tenant.status}, 200
