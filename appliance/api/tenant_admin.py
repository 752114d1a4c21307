"""``/api/admin/tenants``: the appliance's tenants; an operator lifts a suspension.

Permissions ``tenants.*`` belong to people signed in to the admin UI (owner
and admin roles); no API key holds them, so one tenant's key can never list,
rename or reinstate another tenant. A suspended tenant's own keys are
refused everywhere (403), so the lift must come from an operator. The
reinstatement is recorded as a ``reputation_reinstated`` event; the
reputation guard then judges only the tenant's traffic after it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError
from appliance.api.request_body import json_body
from appliance.store.tenants import Tenant

blueprint = Blueprint("tenant_admin", __name__, url_prefix="/api/admin/tenants")

OPERATOR_SCOPE = "tenants.update"


class TenantFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "status": tenant.status,
        "suspended_reason": tenant.suspended_reason,
        "created_at": tenant.created_at,
    }


def _not_found(tenant_id: str) -> ApiError:
    return ApiError(404, f"no tenant {tenant_id}", "tenant_id", "GET /api/admin/tenants lists them")


@blueprint.get("")
@requires("tenants.read")
async def list_tenants() -> dict[str, Any]:
    return {"result": [tenant_json(t) for t in await app_ctx().store.tenants.all()]}


@blueprint.post("")
@requires("tenants.create")
@json_body(TenantFields)
async def create_tenant(data: TenantFields) -> tuple[dict[str, Any], int]:
    tenant = await app_ctx().store.tenants.create(data.name.strip())
    return tenant_json(tenant), 201


@blueprint.patch("/<tenant_id>")
@requires("tenants.update")
@json_body(TenantFields)
async def rename_tenant(tenant_id: str, data: TenantFields) -> dict[str, Any]:
    store = app_ctx().store.tenants
    if not await store.rename(tenant_id, data.name.strip()):
        raise _not_found(tenant_id)
    tenant = await store.get(tenant_id)
    assert tenant is not None
    return tenant_json(tenant)


@blueprint.post("/<tenant_id>/reinstate")
@requires(OPERATOR_SCOPE)
async def reinstate(tenant_id: str) -> tuple[dict[str, Any], int]:
    caller = principal()
    store = app_ctx().store
    done = await store.reputation.reinstate(tenant_id, by=caller.actor, now=time.time())
    if done is None:
        raise _not_found(tenant_id)
    tenant = await store.tenants.get(tenant_id)
    assert tenant is not None
    if not done:
        raise ApiError(
            409,
            f"tenant {tenant_id} is not suspended (status {tenant.status}); nothing to lift",
            "tenant_id",
        )
    return tenant_json(tenant), 200
