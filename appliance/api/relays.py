"""``/api/admin/relays``: smart-host relays (``POST …/test`` is in ``api/relay_test.py``).

Relays are operator settings shared by all tenants of the appliance (an IP
pool's mail goes through its relay, whoever sends it), not a tenant's own
data. Scopes: ``relays.read`` / ``relays.create`` / ``relays.update`` /
``relays.delete`` from ``domain/scopes.py``. SendGrid has no relay resource;
its nearest, ``ips.*``, is about addresses, so relays get their own family.
Paths take the relay's id or its name.

The password is encrypted at rest with the secret box and never returned:
answers say ``"has_password": true``. PATCH keeps the password unless the
body gives ``password`` (a new one) or ``null`` (none, with no username).
Credentials are never sent without TLS, so ``tls_mode: "none"`` takes no
username.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr
from quart import Blueprint
from quart_schema import tag

from appliance.api.authz import app_ctx, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.services.relay_test import DEFAULT_PORTS
from appliance.store.relays import (
    AUTH_MECHANISMS,
    TLS_MODES,
    AuthMechanismName,
    Relay,
    RelayExistsError,
    TlsMode,
)

blueprint = Blueprint("relays", __name__, url_prefix="/api/admin/relays")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


class RelayFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: StrictStr | None = None
    port: StrictInt | None = None
    tls_mode: StrictStr | None = None
    verify_tls: StrictBool | None = None
    username: StrictStr | None = None
    password: StrictStr | None = None
    auth_mechanism: StrictStr | None = None


class CreateRelay(RelayFields):
    name: StrictStr
    host: StrictStr


class UpdateRelay(RelayFields):
    name: StrictStr | None = None


# ---------------------------------------------------------------- validation


def check_name(value: str, what: str = "relay") -> str:
    name = value.strip()
    if not NAME_RE.match(name):
        raise bad_request(f"{what} name {value!r} is not valid: use {_NAME_RULE}", "name")
    return name


def _host(value: str) -> str:
    text = value.strip().rstrip(".").lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    head, sep, tail = text.rpartition(":")
    if sep and tail.isdigit() and ":" not in head:
        raise bad_request(
            f"host {value!r} includes a port: give the host alone and the port in port",
            "host",
        )
    labels = text.split(".")
    if not text or len(text) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise bad_request(
            f"host {value!r} is not a host name or IP address",
            "host",
            "give the relay's name, such as smtp.example.com, or its address",
        )
    return text


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise bad_request(
            f"port {value} is out of range (1-65535)",
            "port",
            "587 for STARTTLS, 465 for implicit TLS, 25 for relays that take plain SMTP",
        )
    return value


def _tls_mode(value: str) -> TlsMode:
    mode = value.strip().lower()
    if mode not in TLS_MODES:
        raise bad_request(
            f"tls_mode {value!r} is not one of {', '.join(TLS_MODES)}",
            "tls_mode",
            "starttls: port 587, upgrade after EHLO; implicit: port 465, TLS from the start; "
            "none: no encryption (only for a relay on a trusted network, without login)",
        )
    return mode


def _mechanism(value: str | None) -> AuthMechanismName | None:
    if value is None:
        return None
    mechanism = value.strip().upper()
    if mechanism not in AUTH_MECHANISMS:
        raise bad_request(
            f"auth_mechanism {value!r} is not PLAIN or LOGIN",
            "auth_mechanism",
            "leave it null to use the best mechanism the relay offers",
        )
    return mechanism


def _check_credentials(tls_mode: TlsMode, username: str | None, has_password: bool) -> None:
    if username is not None and not username.strip():
        raise bad_request("username must not be empty (null: no login)", "username")
    if (username is None) != (not has_password):
        field = "password" if username is not None else "username"
        raise bad_request(
            "username and password go together: give both, or neither for a relay "
            "that takes mail without a login",
            field,
        )
    if username is not None and tls_mode == "none":
        raise bad_request(
            'a relay with tls_mode "none" cannot take a username: the password would '
            "cross the network in clear text",
            "tls_mode",
            'use "starttls" (port 587) or "implicit" (port 465)',
        )


def _encrypt(password: str) -> str:
    if not password:
        raise bad_request("password must not be empty (null: no login)", "password")
    return app_ctx().secrets.encrypt(password.encode("utf-8"))


def _settings(data: RelayFields, current: Relay) -> Relay:
    """``current`` with the fields ``data`` gives, each checked (null only where allowed)."""
    given = data.model_fields_set
    for name in ("host", "port", "tls_mode", "verify_tls"):
        if name in given and getattr(data, name) is None:
            raise bad_request(f"{name} must not be null", name)
    relay = current
    if data.host is not None:
        relay = dataclasses.replace(relay, host=_host(data.host))
    if data.tls_mode is not None:
        relay = dataclasses.replace(relay, tls_mode=_tls_mode(data.tls_mode))
    if data.port is not None:
        relay = dataclasses.replace(relay, port=_port(data.port))
    if data.verify_tls is not None:
        relay = dataclasses.replace(relay, verify_tls=data.verify_tls)
    if "auth_mechanism" in given:
        relay = dataclasses.replace(relay, auth_mechanism=_mechanism(data.auth_mechanism))
    if "username" in given:
        username = data.username.strip() if data.username is not None else None
        relay = dataclasses.replace(relay, username=username)
        if username is None and "password" not in given:
            relay = dataclasses.replace(relay, password=None)  # no login: no password
    if "password" in given:
        password = None if data.password is None else _encrypt(data.password)
        relay = dataclasses.replace(relay, password=password)
    _check_credentials(relay.tls_mode, relay.username, relay.password is not None)
    return relay


def new_relay(data: RelayFields, name: str) -> Relay:
    """A relay from a create (or inline test) body, defaults filled in."""
    mode = _tls_mode(data.tls_mode) if data.tls_mode is not None else "starttls"
    blank = Relay("", name, "", DEFAULT_PORTS[mode], mode, True, None, None, None, 0.0, 0.0)
    if data.host is None:
        raise bad_request("host missing required argument", "host")
    return _settings(data, blank)


def relay_json(relay: Relay) -> dict[str, Any]:
    return {
        "id": relay.id,
        "name": relay.name,
        "host": relay.host,
        "port": relay.port,
        "tls_mode": relay.tls_mode,
        "verify_tls": relay.verify_tls,
        "username": relay.username,
        "has_password": relay.password is not None,
        "auth_mechanism": relay.auth_mechanism,
        "created_at": relay.created_at,
        "updated_at": relay.updated_at,
    }


def relay_not_found(relay_id: str) -> ApiError:
    return ApiError(
        404, f"relay {relay_id!r} not found", "relay_id", "GET /api/admin/relays lists them"
    )


def _exists(exc: RelayExistsError) -> ApiError:
    return ApiError(
        409,
        f"a relay named {exc.name!r} already exists",
        "name",
        "choose another name, or PATCH the existing relay",
    )


async def _relay(id_or_name: str) -> Relay:
    relay = await app_ctx().store.relays.find(id_or_name)
    if relay is None:
        raise relay_not_found(id_or_name)
    return relay


# ---------------------------------------------------------------- CRUD


@blueprint.get("")
@tag(["Relays"])
@requires("relays.read")
async def list_relays() -> dict[str, Any]:
    return {"result": [relay_json(r) for r in await app_ctx().store.relays.list()]}


@blueprint.post("")
@tag(["Relays"])
@requires("relays.create")
@json_body(CreateRelay)
async def create_relay(data: CreateRelay) -> tuple[dict[str, Any], int]:
    relay = new_relay(data, check_name(data.name))
    try:
        created = await app_ctx().store.relays.create(
            name=relay.name,
            host=relay.host,
            port=relay.port,
            tls_mode=relay.tls_mode,
            verify_tls=relay.verify_tls,
            username=relay.username,
            password=relay.password,
            auth_mechanism=relay.auth_mechanism,
        )
    except RelayExistsError as exc:
        raise _exists(exc) from None
    return relay_json(created), 201


@blueprint.get("/<relay_id>")
@tag(["Relays"])
@requires("relays.read")
async def get_relay(relay_id: str) -> dict[str, Any]:
    return relay_json(await _relay(relay_id))


@blueprint.patch("/<relay_id>")
@tag(["Relays"])
@requires("relays.update")
@json_body(UpdateRelay)
async def update_relay(relay_id: str, data: UpdateRelay) -> dict[str, Any]:
    current = await _relay(relay_id)
    if "name" in data.model_fields_set and data.name is None:
        raise bad_request("name must not be null", "name")
    relay = _settings(data, current)
    if data.name is not None:
        relay = dataclasses.replace(relay, name=check_name(data.name))
    try:
        updated = await app_ctx().store.relays.update(relay)
    except RelayExistsError as exc:
        raise _exists(exc) from None
    if updated is None:
        raise relay_not_found(relay_id)
    return relay_json(updated)


@blueprint.delete("/<relay_id>")
@tag(["Relays"])
@requires("relays.delete")
async def delete_relay(relay_id: str) -> dict[str, Any]:
    relay = await _relay(relay_id)
    pools = await app_ctx().store.relays.delete(relay.id)
    if pools is None:
        raise relay_not_found(relay_id)
    if pools:
        listed = ", ".join(pools)
        message = (
            f"Relay {relay.name} deleted. {len(pools)} IP pool{'s' if len(pools) > 1 else ''} "
            f"used it ({listed}) and now deliver{'s' if len(pools) == 1 else ''} direct to the "
            "recipients' MX hosts: PATCH /api/admin/ip_pools/{name} with a relay_id to change that."
        )
    else:
        message = f"Relay {relay.name} deleted; no IP pool used it."
    return {"deleted": relay.id, "name": relay.name, "pools_detached": pools, "message": message}
