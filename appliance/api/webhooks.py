"""``/v3/user/webhooks``: a tenant's event webhooks (SendGrid's forms: ``webhook_settings.py``).

A webhook has a URL, an event filter (``event_types``; empty = every
event), a format (``postyard``: our event payload; ``sendgrid``: SendGrid's
Event Webhook objects), ``enabled`` and, when ``signed``, an ECDSA P-256
key pair whose public key is shown as SendGrid shows it. A webhook the
dispatcher turned off after sustained failure shows ``disabled_at`` and
``disabled_reason``; ``PATCH {"enabled": true}`` turns it on again and its
pending events go out from where delivery stopped.

Scopes: SendGrid's ``user.webhooks.event.settings.*`` and, for the test
POST, ``user.webhooks.event.test.create``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr
from quart import Blueprint, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.domain.webhook_addresses import ALLOW_HELP, blocked_host
from appliance.domain.webhook_payloads import EVENT_TYPES, FORMATS, WebhookFormat
from appliance.domain.webhook_signing import generate_key_pair
from appliance.services.webhooks import send_test
from appliance.store.webhooks import DeliveryAttempt, Webhook

blueprint = Blueprint("webhooks", __name__, url_prefix="/v3/user/webhooks")

MAX_WEBHOOKS = 5  # SendGrid's max_allowed
NO_EVENTS = ("none",)  # a filter that takes nothing (SendGrid settings with every flag off)


class WebhookFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StrictStr | None = None
    friendly_name: StrictStr | None = None
    enabled: StrictBool | None = None
    event_types: list[StrictStr] | None = None
    format: StrictStr | None = None
    signed: StrictBool | None = None


class CreateWebhook(WebhookFields):
    url: StrictStr


# ---------------------------------------------------------------- checks


def check_url(value: str, field: str = "url") -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(
            f"url {value!r} is not an http(s) URL",
            field,
            "give the full address of your receiver, such as https://hooks.example.com/sendgrid",
        )
    if parts.username or parts.password:
        raise bad_request("url must not carry a user name or password", field)
    reason = blocked_host(parts.hostname)
    if reason is not None and not app_ctx().config.webhook_allow_link_local:
        raise bad_request(f"url {value!r} is refused: {reason}", field, ALLOW_HELP)
    return url


def check_event_types(values: list[str]) -> tuple[str, ...]:
    if tuple(values) == NO_EVENTS:
        return NO_EVENTS
    unknown = [v for v in values if v not in EVENT_TYPES]
    if unknown:
        raise bad_request(
            f"unknown event type(s): {', '.join(map(repr, unknown))}",
            "event_types",
            f"choose among {', '.join(EVENT_TYPES)}; an empty list means every event",
        )
    return tuple(dict.fromkeys(values))


def check_format(value: str) -> WebhookFormat:
    for fmt in FORMATS:
        if value.strip().lower() == fmt:
            return fmt
    raise bad_request(
        f"format {value!r} is not one of {', '.join(FORMATS)}",
        "format",
        "postyard: our event payload; sendgrid: SendGrid's Event Webhook objects",
    )


def check_friendly_name(value: str | None) -> str | None:
    if value is not None and len(value) > 100:
        raise bad_request("friendly_name is longer than 100 characters", "friendly_name")
    return value or None


def webhook_not_found(webhook_id: str) -> ApiError:
    return ApiError(
        404, f"webhook {webhook_id!r} not found", "id", "GET /v3/user/webhooks lists yours"
    )


async def check_unique_url(tenant_id: str, url: str, webhook_id: str | None = None) -> None:
    for other in await app_ctx().store.webhooks.list(tenant_id):
        if other.url == url and other.id != webhook_id:
            raise bad_request(
                f"webhook {other.id} already sends to {url}; no two webhooks may share a URL",
                "url",
                "PATCH that webhook instead (its event filter, format, signing)",
            )


def signing_keys() -> tuple[str, str]:
    pair = generate_key_pair()
    return pair.public_key, app_ctx().secrets.encrypt(pair.private_key_pem)


def with_signing(hook: Webhook, signed: bool) -> Webhook:
    """``hook`` signed (keeping its key, or with a new one) or unsigned (key dropped)."""
    if signed and hook.signing_private_key:
        return dataclasses.replace(hook, signed=True)
    if signed:
        public, private = signing_keys()
        return dataclasses.replace(
            hook, signed=True, signing_public_key=public, signing_private_key=private
        )
    return dataclasses.replace(
        hook, signed=False, signing_public_key=None, signing_private_key=None
    )


async def webhook_or_404(webhook_id: str) -> Webhook:
    hook = await app_ctx().store.webhooks.get(principal().tenant_id, webhook_id)
    if hook is None:
        raise webhook_not_found(webhook_id)
    return hook


async def create(
    *,
    url: str,
    friendly_name: str | None,
    enabled: bool,
    event_types: tuple[str, ...],
    fmt: WebhookFormat,
    signed: bool,
) -> Webhook:
    tenant_id = principal().tenant_id
    store = app_ctx().store.webhooks
    if len(await store.list(tenant_id)) >= MAX_WEBHOOKS:
        raise ApiError(
            400,
            f"this account already has {MAX_WEBHOOKS} webhooks, the most allowed",
            None,
            "delete one (DELETE /v3/user/webhooks/{id}) or change an existing one",
        )
    await check_unique_url(tenant_id, url)
    return await store.create(
        tenant_id=tenant_id,
        url=url,
        friendly_name=friendly_name,
        enabled=enabled,
        event_types=event_types,
        format=fmt,
        signing_keys=signing_keys() if signed else None,
    )


async def save(current: Webhook, changed: Webhook, *, enable: bool = False) -> Webhook:
    """Write ``changed``; turning it on goes through ``enable`` (pending events due now)."""
    store = app_ctx().store.webhooks
    if changed.url != current.url:
        await check_unique_url(current.tenant_id, changed.url, current.id)
    turning_on = enable and not (current.enabled and current.disabled_at is None)
    saved = await store.update(dataclasses.replace(changed, enabled=current.enabled))
    if saved is None:
        raise webhook_not_found(current.id)
    if turning_on:
        saved = await store.enable(saved.tenant_id, saved.id, now=time.time())
    elif changed.enabled != current.enabled:
        saved = await store.update(dataclasses.replace(saved, enabled=changed.enabled))
    if saved is None:
        raise webhook_not_found(current.id)
    return saved


# ---------------------------------------------------------------- answers


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "friendly_name": hook.friendly_name,
        "enabled": hook.enabled,
        "event_types": list(hook.event_types),
        "format": hook.format,
        "signed": hook.signed,
        "public_key": hook.signing_public_key,
        "disabled_at": hook.disabled_at,
        "disabled_reason": hook.disabled_reason,
        "failing_since": hook.failing_since,
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
    }


def attempt_json(a: DeliveryAttempt) -> dict[str, Any]:
    return {
        "attempted_at": a.attempted_at,
        "events": a.events,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "ok": a.error is None,
        "error": a.error,
        "response_snippet": a.response_snippet,
        "test": a.test,
    }


# ---------------------------------------------------------------- routes


@blueprint.get("")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def list_webhooks() -> dict[str, Any]:
    hooks = await app_ctx().store.webhooks.list(principal().tenant_id)
    return {"result": [webhook_json(h) for h in hooks], "max_allowed": MAX_WEBHOOKS}


@blueprint.post("")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.create")
@json_body(CreateWebhook)
async def create_webhook(data: CreateWebhook) -> tuple[dict[str, Any], int]:
    for name in ("enabled", "signed", "format", "event_types"):
        if name in data.model_fields_set and getattr(data, name) is None:
            raise bad_request(f"{name} must not be null", name)
    hook = await create(
        url=check_url(data.url),
        friendly_name=check_friendly_name(data.friendly_name),
        enabled=data.enabled if data.enabled is not None else True,
        event_types=check_event_types(data.event_types or []),
        fmt=check_format(data.format) if data.format is not None else "postyard",
        signed=bool(data.signed),
    )
    return webhook_json(hook), 201


@blueprint.get("/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def get_webhook(webhook_id: str) -> dict[str, Any]:
    return webhook_json(await webhook_or_404(webhook_id))


@blueprint.patch("/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.update")
@json_body(WebhookFields)
async def update_webhook(webhook_id: str, data: WebhookFields) -> dict[str, Any]:
    current = await webhook_or_404(webhook_id)
    for name in ("url", "enabled", "signed", "format", "event_types"):
        if name in data.model_fields_set and getattr(data, name) is None:
            raise bad_request(f"{name} must not be null", name)
    hook = current
    if data.url is not None:
        hook = dataclasses.replace(hook, url=check_url(data.url))
    if "friendly_name" in data.model_fields_set:
        hook = dataclasses.replace(hook, friendly_name=check_friendly_name(data.friendly_name))
    if data.event_types is not None:
        hook = dataclasses.replace(hook, event_types=check_event_types(data.event_types))
    if data.format is not None:
        hook = dataclasses.replace(hook, format=check_format(data.format))
    if data.signed is not None:
        hook = with_signing(hook, data.signed)
    if data.enabled is not None:
        hook = dataclasses.replace(hook, enabled=data.enabled)
    return webhook_json(await save(current, hook, enable=data.enabled is True))


@blueprint.delete("/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.delete")
async def delete_webhook(webhook_id: str) -> tuple[str, int]:
    if not await app_ctx().store.webhooks.delete(principal().tenant_id, webhook_id):
        raise webhook_not_found(webhook_id)
    return "", 204


@blueprint.get("/<webhook_id>/deliveries")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def list_deliveries(webhook_id: str) -> dict[str, Any]:
    hook = await webhook_or_404(webhook_id)
    raw = request.args.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise bad_request(f"limit {raw!r} is not a number from 1 to 1000", "limit")
    attempts = await app_ctx().store.webhooks.attempts(hook.id, int(raw))
    return {"result": [attempt_json(a) for a in attempts]}


@blueprint.post("/<webhook_id>/test")
@tag(["Webhooks"])
@requires("user.webhooks.event.test.create")
async def test_webhook(webhook_id: str) -> dict[str, Any]:
    hook = await webhook_or_404(webhook_id)
    result = await send_test(app_ctx(), hook)
    return {
        "ok": result.ok,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "response_snippet": result.response_snippet,
    }
