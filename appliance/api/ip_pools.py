"""``/api/admin/ip_pools``: source-address pools, their relay and warm-up.

A pool is what ``ip_pool_name`` in ``/v3/mail/send`` names: the local
addresses its mail leaves from, optionally a smart-host relay that takes its
mail instead of the recipients' MX hosts, and warm-up (daily caps rising
from the day it was turned on). Pools are operator settings shared by all
tenants of the appliance, not a tenant's own data.

Scopes ``ip_pools.read`` / ``.create`` / ``.update`` / ``.delete`` from
``domain/scopes.py`` (SendGrid's ``ips.pools.*``). Paths take the pool's id
or its name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr
from quart import Blueprint
from quart_schema import tag

from appliance.api.authz import app_ctx, requires
from appliance.api.errors import ApiError, FieldError, bad_request
from appliance.api.relays import check_name
from appliance.api.request_body import json_body
from appliance.store.ip_pools import IpPool, IpPoolExistsError, RelayGoneError

blueprint = Blueprint("ip_pools", __name__, url_prefix="/api/admin/ip_pools")

MAX_ADDRESSES = 256


class CreateIpPool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    addresses: list[StrictStr] = []
    relay_id: StrictStr | None = None
    warmup: StrictBool = False


class UpdateIpPool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr | None = None
    addresses: list[StrictStr] | None = None
    relay_id: StrictStr | None = None
    warmup: StrictBool | None = None


def check_addresses(values: list[str]) -> tuple[str, ...]:
    """Normalised IP addresses (duplicates dropped), or a 400 naming every bad one."""
    if len(values) > MAX_ADDRESSES:
        raise bad_request(f"addresses: at most {MAX_ADDRESSES} per pool", "addresses")
    out: list[str] = []
    errors: list[FieldError] = []
    for i, raw in enumerate(values):
        try:
            address = ipaddress.ip_address(raw.strip())
        except ValueError:
            hint = " (a network: list its addresses one by one)" if "/" in raw else ""
            errors.append(FieldError(f"{raw!r} is not an IP address{hint}", f"addresses.{i}", None))
            continue
        if address.is_unspecified or address.is_multicast:
            errors.append(
                FieldError(
                    f"{raw!r} cannot be a source address (it is "
                    f"{'unspecified' if address.is_unspecified else 'multicast'})",
                    f"addresses.{i}",
                    "give addresses configured on this appliance's network interfaces",
                )
            )
            continue
        if str(address) not in out:
            out.append(str(address))
    if errors:
        raise ApiError(400, errors[0].message, errors=errors)
    return tuple(out)


async def _relay_id(value: str | None) -> str | None:
    if value is None:
        return None
    relay = await app_ctx().store.relays.find(value)
    if relay is None:
        raise bad_request(
            f"relay {value!r} does not exist",
            "relay_id",
            "GET /api/admin/relays lists them; null: deliver direct to MX",
        )
    return relay.id


async def pool_json(pool: IpPool) -> dict[str, Any]:
    relay = await app_ctx().store.relays.get(pool.relay_id) if pool.relay_id else None
    return {
        "id": pool.id,
        "name": pool.name,
        "addresses": list(pool.addresses),
        "relay_id": pool.relay_id,
        "relay_name": relay.name if relay else None,
        "warmup": pool.warming_up,
        "warmup_started_at": pool.warmup_started_at,
        "created_at": pool.created_at,
        "updated_at": pool.updated_at,
    }


def _not_found(name_or_id: str) -> ApiError:
    return ApiError(
        404, f"IP pool {name_or_id!r} not found", "name", "GET /api/admin/ip_pools lists them"
    )


def _store_error(exc: IpPoolExistsError | RelayGoneError) -> ApiError:
    if isinstance(exc, IpPoolExistsError):
        return ApiError(
            409,
            f"an IP pool named {exc.name!r} already exists",
            "name",
            "choose another name, or PATCH the existing pool",
        )
    return bad_request(f"relay {exc.relay_id!r} does not exist (deleted meanwhile)", "relay_id")


async def _pool(name_or_id: str) -> IpPool:
    pool = await app_ctx().store.ip_pools.find(name_or_id)
    if pool is None:
        raise _not_found(name_or_id)
    return pool


@blueprint.get("")
@tag(["IP pools"])
@requires("ip_pools.read")
async def list_pools() -> dict[str, Any]:
    return {"result": [await pool_json(p) for p in await app_ctx().store.ip_pools.list()]}


@blueprint.post("")
@tag(["IP pools"])
@requires("ip_pools.create")
@json_body(CreateIpPool)
async def create_pool(data: CreateIpPool) -> tuple[dict[str, Any], int]:
    name = check_name(data.name, "IP pool")
    addresses = check_addresses(data.addresses)
    relay_id = await _relay_id(data.relay_id)
    try:
        pool = await app_ctx().store.ip_pools.create(
            name=name,
            addresses=addresses,
            relay_id=relay_id,
            warmup_started_at=time.time() if data.warmup else None,
        )
    except (IpPoolExistsError, RelayGoneError) as exc:
        raise _store_error(exc) from None
    return await pool_json(pool), 201


@blueprint.get("/<name_or_id>")
@tag(["IP pools"])
@requires("ip_pools.read")
async def get_pool(name_or_id: str) -> dict[str, Any]:
    return await pool_json(await _pool(name_or_id))


@blueprint.patch("/<name_or_id>")
@tag(["IP pools"])
@requires("ip_pools.update")
@json_body(UpdateIpPool)
async def update_pool(name_or_id: str, data: UpdateIpPool) -> dict[str, Any]:
    pool = await _pool(name_or_id)
    given = data.model_fields_set
    for field in ("name", "addresses", "warmup"):
        if field in given and getattr(data, field) is None:
            raise bad_request(f"{field} must not be null", field)
    if data.name is not None:
        pool = dataclasses.replace(pool, name=check_name(data.name, "IP pool"))
    if data.addresses is not None:
        pool = dataclasses.replace(pool, addresses=check_addresses(data.addresses))
    if "relay_id" in given:
        pool = dataclasses.replace(pool, relay_id=await _relay_id(data.relay_id))
    if data.warmup is True and pool.warmup_started_at is None:
        pool = dataclasses.replace(pool, warmup_started_at=time.time())
    elif data.warmup is False:
        pool = dataclasses.replace(pool, warmup_started_at=None)
    try:
        updated = await app_ctx().store.ip_pools.update(pool)
    except (IpPoolExistsError, RelayGoneError) as exc:
        raise _store_error(exc) from None
    if updated is None:
        raise _not_found(name_or_id)
    return await pool_json(updated)


@blueprint.delete("/<name_or_id>")
@tag(["IP pools"])
@requires("ip_pools.delete")
async def delete_pool(name_or_id: str) -> tuple[str, int]:
    pool = await _pool(name_or_id)
    if not await app_ctx().store.ip_pools.delete(pool.id):
        raise _not_found(name_or_id)
    return "", 204
