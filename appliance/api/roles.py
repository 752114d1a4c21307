"""``/api/admin/roles``: built-in and custom roles of the admin UI and their permissions.

Built-in roles (owner, admin, developer, viewer) can be edited but not deleted
or renamed; a custom role can be deleted once nobody holds it. Nobody saves a
role with a permission they do not hold themselves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.domain.roles import (
    ALL_PERMISSIONS,
    RoleRuleError,
    check_permissions,
    check_role_name,
)
from appliance.store.roles import Role, RoleInUseError

blueprint = Blueprint("roles", __name__, url_prefix="/api/admin/roles")


class CreateRole(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    description: str = Field(default="", max_length=250)
    permissions: list[str]


class UpdateRole(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(default=None, max_length=250)
    permissions: list[str] | None = None


def role_json(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(role.permissions),
        "builtin": role.builtin,
        "updated_at": role.updated_at,
    }


def _rule(exc: RoleRuleError) -> ApiError:
    status = 403 if "do not hold" in str(exc) else 400
    return ApiError(status, str(exc), exc.field, "GET /api/admin/roles/permissions lists them")


@blueprint.get("")
@requires("roles.read")
async def list_roles() -> dict[str, Any]:
    return {"result": [role_json(r) for r in await app_ctx().store.roles.list()]}


@blueprint.get("/permissions")
@requires("roles.read")
async def list_permissions() -> dict[str, Any]:
    return {"permissions": sorted(ALL_PERMISSIONS)}


@blueprint.post("")
@requires("roles.create")
@json_body(CreateRole)
async def create_role(data: CreateRole) -> tuple[dict[str, Any], int]:
    try:
        check_role_name(data.name)
        permissions = check_permissions(data.permissions, held=principal().scopes)
    except RoleRuleError as exc:
        raise _rule(exc) from None
    role = await app_ctx().store.roles.create(data.name, data.description, permissions)
    if role is None:
        raise bad_request(f"a role named {data.name!r} exists already", "name")
    return role_json(role), 201


@blueprint.patch("/<name>")
@requires("roles.update")
@json_body(UpdateRole)
async def update_role(name: str, data: UpdateRole) -> dict[str, Any]:
    store = app_ctx().store.roles
    if await store.get(name) is None:
        raise ApiError(404, f"role {name!r} not found", "name", None)
    permissions = None
    if data.permissions is not None:
        try:
            permissions = check_permissions(data.permissions, held=principal().scopes)
        except RoleRuleError as exc:
            raise _rule(exc) from None
    role = await store.update(name, description=data.description, permissions=permissions)
    if role is None:
        raise ApiError(404, f"role {name!r} not found", "name", None)
    return role_json(role)


@blueprint.delete("/<name>")
@requires("roles.delete")
async def delete_role(name: str) -> tuple[str, int]:
    store = app_ctx().store.roles
    role = await store.get(name)
    if role is None:
        raise ApiError(404, f"role {name!r} not found", "name", None)
    if role.builtin:
        raise bad_request(f"{name} is a built-in role and cannot be deleted", "name")
    try:
        await store.delete(name)
    except RoleInUseError as exc:
        raise ApiError(409, str(exc), "name", "give those users another role first") from None
    return "", 204
