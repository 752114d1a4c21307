"""``/api/admin/users``: the people who sign in to the admin UI, their roles and tenants.

Permissions ``users.*`` exist only for signed-in people (no API key holds
them). Nobody can give a role granting more than they hold themselves, nor
change, disable or delete their own account here (use the account page), so
the last owner cannot lock everyone out by mistake.
"""

from __future__ import annotations

from typing import Any

import trio
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from quart import Blueprint

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.domain.passwords import generate_password, hash_password, password_problem
from appliance.domain.roles import RoleRuleError, check_assignable
from appliance.store.users import EmailTakenError, User

blueprint = Blueprint("users", __name__, url_prefix="/api/admin/users")


class CreateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(default="", max_length=200)
    role: str = Field(min_length=1, max_length=64)
    tenant_id: str | None = None
    password: str | None = None


class UpdateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=64)
    tenant_id: str | None = None
    disabled: StrictBool | None = None
    unlock: StrictBool | None = None
    reset_totp: StrictBool | None = None
    password: str | None = None


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "tenant_id": user.tenant_id,
        "disabled": user.disabled,
        "totp": user.has_totp,
        "sso": user.oidc_subject is not None,
        "locked_until": user.locked_until,
        "last_login_at": user.last_login_at,
        "created_at": user.created_at,
    }


def _not_found(user_id: str) -> ApiError:
    return ApiError(404, f"user {user_id!r} not found", "id", "GET /api/admin/users lists them")


async def _check_role(name: str) -> None:
    role = await app_ctx().store.roles.get(name)
    if role is None:
        raise bad_request(f"there is no role {name!r}", "role", "GET /api/admin/roles lists them")
    try:
        check_assignable(role.permissions, held=principal().scopes, role=name)
    except RoleRuleError as exc:
        raise ApiError(403, str(exc), exc.field, None) from None


async def _check_can_manage(user: User) -> None:
    """Nobody changes or deletes someone whose role grants more than they hold."""
    role = await app_ctx().store.roles.get(user.role)
    if role is not None:
        try:
            check_assignable(role.permissions, held=principal().scopes, role=user.role)
        except RoleRuleError as exc:
            raise ApiError(403, str(exc), "role", None) from None


async def _check_tenant(tenant_id: str | None) -> None:
    if tenant_id is not None and await app_ctx().store.tenants.get(tenant_id) is None:
        raise bad_request(f"there is no tenant {tenant_id!r}", "tenant_id")


async def _hashed(password: str, email: str) -> str:
    problem = password_problem(password, email=email)
    if problem:
        raise bad_request(problem, "password")
    return await trio.to_thread.run_sync(hash_password, password)


@blueprint.get("")
@requires("users.read")
async def list_users() -> dict[str, Any]:
    return {"result": [user_json(u) for u in await app_ctx().store.users.list()]}


@blueprint.post("")
@requires("users.create")
@json_body(CreateUser)
async def create_user(data: CreateUser) -> tuple[dict[str, Any], int]:
    try:
        email = str(parse_address(data.email.strip()))
    except InvalidAddressError as exc:
        raise bad_request(str(exc), "email") from None
    await _check_role(data.role)
    await _check_tenant(data.tenant_id)
    store = app_ctx().store.users
    if await store.get_by_email(email):
        raise bad_request(f"a user with email {email} exists already", "email")
    password = data.password or generate_password()
    user = await store.create(
        email=email,
        name=data.name,
        role=data.role,
        tenant_id=data.tenant_id,
        password_hash=await _hashed(password, email),
    )
    shown = {} if data.password else {"password": password}
    return {**user_json(user), **shown}, 201


@blueprint.get("/<user_id>")
@requires("users.read")
async def get_user(user_id: str) -> dict[str, Any]:
    user = await app_ctx().store.users.get(user_id)
    if user is None:
        raise _not_found(user_id)
    return user_json(user)


@blueprint.patch("/<user_id>")
@requires("users.update")
@json_body(UpdateUser)
async def update_user(user_id: str, data: UpdateUser) -> dict[str, Any]:
    store = app_ctx().store
    user = await store.users.get(user_id)
    if user is None:
        raise _not_found(user_id)
    given = data.model_fields_set
    if user.id == principal().user_id and given & {"role", "disabled", "tenant_id"}:
        raise ApiError(
            403,
            "you cannot change your own role, tenant or access",
            None,
            "ask another owner or admin",
        )
    await _check_can_manage(user)
    values: dict[str, Any] = {}
    if data.name is not None:
        values["name"] = data.name
    if data.role is not None:
        await _check_role(data.role)
        values["role"] = data.role
    if "tenant_id" in given:
        await _check_tenant(data.tenant_id)
        values["tenant_id"] = data.tenant_id
    if data.disabled is not None:
        values["disabled"] = data.disabled
    if data.unlock:
        values.update(failed_logins=0, locked_until=None)
    if data.reset_totp:
        values["totp_secret"] = None
    if data.password is not None:
        values["password_hash"] = await _hashed(data.password, user.email)
    try:
        updated = await store.users.update(user.id, **values) if values else user
    except EmailTakenError:
        raise bad_request("that email belongs to another user", "email") from None
    if updated is None:
        raise _not_found(user_id)
    if data.disabled or data.password is not None or "role" in values:
        await store.admin_sessions.delete_for_user(user.id)
    return user_json(updated)


@blueprint.delete("/<user_id>")
@requires("users.delete")
async def delete_user(user_id: str) -> tuple[str, int]:
    if user_id == principal().user_id:
        raise ApiError(403, "you cannot delete your own account", None, None)
    store = app_ctx().store
    user = await store.users.get(user_id)
    if user is None:
        raise _not_found(user_id)
    await _check_can_manage(user)
    await store.users.delete(user_id)
    return "", 204
