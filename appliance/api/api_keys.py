"""``/v3/api_keys``: SendGrid's API key endpoints, per tenant.

A key can only grant scopes it holds itself; omitting ``scopes`` on create
gives the new key all of the caller's scopes (for a full-access key: full
access, as on SendGrid).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.domain import scopes as scope_rules
from appliance.domain.api_key_format import ApiKeySecret
from appliance.domain.roles import key_scopes
from appliance.store.api_keys import ApiKey

blueprint = Blueprint("api_keys", __name__, url_prefix="/v3/api_keys")
MAX_KEYS_PER_TENANT = 100


class CreateApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] | None = None


class RenameApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class ReplaceApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1)


def _check_grantable(requested: list[str]) -> frozenset[str]:
    unknown = scope_rules.unknown_scopes(requested)
    if unknown:
        raise bad_request(
            f"unknown scopes: {', '.join(unknown)}",
            "scopes",
            "GET /v3/scopes lists the scopes your key holds",
        )
    wanted = frozenset(requested)
    beyond = sorted(wanted - principal().scopes)
    if beyond:
        raise ApiError(
            403,
            f"cannot grant scopes the calling key does not hold: {', '.join(beyond)}",
            "scopes",
            None,
        )
    return wanted


def _not_found() -> ApiError:
    return ApiError(404, "API key not found", "api_key_id", None)


def _detail(key: ApiKey) -> dict[str, Any]:
    return {"api_key_id": key.id, "name": key.name, "scopes": sorted(key.scopes)}


@blueprint.post("")
@tag(["API keys"])
@requires("api_keys.create")
@json_body(CreateApiKey)
async def create_key(data: CreateApiKey) -> tuple[dict[str, Any], int]:
    ctx = app_ctx()
    caller = principal()
    held = key_scopes(caller.scopes)
    granted = held if data.scopes is None else _check_grantable(data.scopes)
    if await ctx.store.api_keys.count(caller.tenant_id) >= MAX_KEYS_PER_TENANT:
        raise ApiError(
            403,
            f"There is a limit of {MAX_KEYS_PER_TENANT} API Keys on your account",
            None,
            "delete keys you no longer use with DELETE /v3/api_keys/{api_key_id}",
        )
    secret = ApiKeySecret.generate()
    key = await ctx.store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=caller.tenant_id,
        name=data.name,
        scopes=granted,
        secret_hash=secret.secret_hash(),
        created_by=caller.actor,
    )
    return {"api_key": secret.token, **_detail(key)}, 201


@blueprint.get("")
@tag(["API keys"])
@requires("api_keys.read")
async def list_keys() -> dict[str, Any]:
    raw_limit = request.args.get("limit")
    limit = None
    if raw_limit is not None:
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            raise bad_request("limit must be a positive integer", "limit")
        limit = int(raw_limit)
    keys = await app_ctx().store.api_keys.for_tenant(principal().tenant_id, limit=limit)
    return {"result": [{"name": k.name, "api_key_id": k.id} for k in keys]}


@blueprint.get("/<key_id>")
@tag(["API keys"])
@requires("api_keys.read")
async def get_key(key_id: str) -> dict[str, Any]:
    key = await app_ctx().store.api_keys.get(principal().tenant_id, key_id)
    if key is None:
        raise _not_found()
    detail = _detail(key)
    # SendGrid's spec wraps the key in "result"; clients written against the live
    # API read the flat object. Both are given, so both kinds of client work.
    return {"result": [detail], **detail}


@blueprint.patch("/<key_id>")
@tag(["API keys"])
@requires("api_keys.update")
@json_body(RenameApiKey)
async def rename_key(key_id: str, data: RenameApiKey) -> dict[str, Any]:
    ctx = app_ctx()
    key = await ctx.store.api_keys.update(principal().tenant_id, key_id, name=data.name)
    if key is None:
        raise _not_found()
    return {"api_key_id": key.id, "name": key.name}


@blueprint.put("/<key_id>")
@tag(["API keys"])
@requires("api_keys.update")
@json_body(ReplaceApiKey)
async def replace_key(key_id: str, data: ReplaceApiKey) -> dict[str, Any]:
    ctx = app_ctx()
    granted = _check_grantable(data.scopes)
    key = await ctx.store.api_keys.update(
        principal().tenant_id, key_id, name=data.name, scopes=granted
    )
    if key is None:
        raise _not_found()
    ctx.authenticator.forget(key_id)
    return _detail(key)


@blueprint.delete("/<key_id>")
@tag(["API keys"])
@requires("api_keys.delete")
async def delete_key(key_id: str) -> tuple[str, int]:
    ctx = app_ctx()
    if not await ctx.store.api_keys.delete(principal().tenant_id, key_id):
        raise _not_found()
    ctx.authenticator.forget(key_id)
    return "", 204
