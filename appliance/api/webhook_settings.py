"""SendGrid's Event Webhook settings forms (compat §6), on the webhooks of ``/v3/user/webhooks``.

- ``POST /v3/user/webhooks/event/settings``, ``GET …/settings/all``,
  ``GET|PATCH|DELETE …/settings/{id}``: the multi-webhook form;
- ``GET|PATCH …/settings`` without an id: the oldest webhook (the legacy
  single-webhook form; PATCH creates one when there is none);
- ``GET|PATCH …/settings/signed[/{id}]``: signing on or off, the public key;
- ``POST …/event/test``: a sample batch to a URL, 204.

Webhooks made through these forms use SendGrid's payload format. The event
flags map onto the event filter (``spam_report`` is the ``spamreport``
event). OAuth is not supported: giving a client id is a 400 that says so.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr
from quart import Blueprint
from quart_schema import tag

from appliance.api import webhooks as native
from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import bad_request
from appliance.api.request_body import json_body
from appliance.services.webhooks import send_test
from appliance.store.webhooks import Webhook

blueprint = Blueprint("webhook_settings", __name__, url_prefix="/v3/user/webhooks/event")

FLAGS = {
    "bounce": "bounce",
    "click": "click",
    "deferred": "deferred",
    "delivered": "delivered",
    "dropped": "dropped",
    "group_resubscribe": "group_resubscribe",
    "group_unsubscribe": "group_unsubscribe",
    "open": "open",
    "processed": "processed",
    "spam_report": "spamreport",
    "unsubscribe": "unsubscribe",
}


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: StrictBool | None = None
    url: StrictStr | None = None
    friendly_name: StrictStr | None = None
    oauth_client_id: StrictStr | None = None
    oauth_client_secret: StrictStr | None = None
    oauth_token_url: StrictStr | None = None
    bounce: StrictBool | None = None
    click: StrictBool | None = None
    deferred: StrictBool | None = None
    delivered: StrictBool | None = None
    dropped: StrictBool | None = None
    group_resubscribe: StrictBool | None = None
    group_unsubscribe: StrictBool | None = None
    open: StrictBool | None = None
    processed: StrictBool | None = None
    spam_report: StrictBool | None = None
    unsubscribe: StrictBool | None = None


class SignedBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: StrictBool


class TestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: StrictStr
    id: StrictStr | None = None
    oauth_client_id: StrictStr | None = None
    oauth_client_secret: StrictStr | None = None
    oauth_token_url: StrictStr | None = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flags(hook: Webhook | None) -> dict[str, bool]:
    types = hook.event_types if hook is not None else native.NO_EVENTS
    return {flag: (not types) or event in types for flag, event in FLAGS.items()}


def settings_json(hook: Webhook | None, *, with_key: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "enabled": bool(hook and hook.enabled),
        "url": hook.url if hook else "",
        **flags(hook),
        "account_status_change": False,
        "friendly_name": hook.friendly_name if hook else None,
        "oauth_client_id": None,
        "oauth_token_url": None,
    }
    if hook is not None:
        body.update(id=hook.id, created_date=_iso(hook.created_at))
        body["updated_date"] = _iso(hook.updated_at)
    if with_key:
        body["public_key"] = (hook.signing_public_key or "") if hook else ""
    return body


def _no_oauth(data: SettingsBody | TestBody) -> None:
    for name in ("oauth_client_id", "oauth_client_secret", "oauth_token_url"):
        if getattr(data, name):
            raise bad_request(
                "OAuth for the Event Webhook is not supported by this server",
                name,
                "leave the oauth_* fields empty; sign the webhook instead "
                '(PATCH /v3/user/webhooks/event/settings/signed {"enabled": true})',
            )


def _event_types(data: SettingsBody, current: Webhook | None) -> tuple[str, ...]:
    now = flags(current)
    for flag in FLAGS:
        value = getattr(data, flag)
        if value is not None:
            now[flag] = value
    chosen = tuple(FLAGS[f] for f, on in now.items() if on)
    return chosen or native.NO_EVENTS


async def _oldest() -> Webhook | None:
    hooks = await app_ctx().store.webhooks.list(principal().tenant_id)
    return hooks[0] if hooks else None


async def _create(data: SettingsBody) -> Webhook:
    _no_oauth(data)
    if data.url is None:
        raise bad_request("url missing required argument", "url")
    return await native.create(
        url=native.check_url(data.url),
        friendly_name=native.check_friendly_name(data.friendly_name),
        enabled=data.enabled if data.enabled is not None else False,
        event_types=_event_types(data, None),
        fmt="sendgrid",
        signed=False,
    )


async def _patch(current: Webhook, data: SettingsBody) -> Webhook:
    _no_oauth(data)
    hook = dataclasses.replace(current, event_types=_event_types(data, current))
    if data.url is not None:
        hook = dataclasses.replace(hook, url=native.check_url(data.url))
    if "friendly_name" in data.model_fields_set:
        hook = dataclasses.replace(
            hook, friendly_name=native.check_friendly_name(data.friendly_name)
        )
    if data.enabled is not None:
        hook = dataclasses.replace(hook, enabled=data.enabled)
    return await native.save(current, hook, enable=data.enabled is True)


# ---------------------------------------------------------------- multi-webhook form


@blueprint.post("/settings")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.create")
@json_body(SettingsBody)
async def create_settings(data: SettingsBody) -> tuple[dict[str, Any], int]:
    return settings_json(await _create(data)), 201


@blueprint.get("/settings/all")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def all_settings() -> dict[str, Any]:
    hooks = await app_ctx().store.webhooks.list(principal().tenant_id)
    return {
        "max_allowed": native.MAX_WEBHOOKS,
        "webhooks": [settings_json(h, with_key=True) for h in hooks],
    }


@blueprint.get("/settings/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def get_settings(webhook_id: str) -> dict[str, Any]:
    return settings_json(await native.webhook_or_404(webhook_id), with_key=True)


@blueprint.patch("/settings/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.update")
@json_body(SettingsBody)
async def patch_settings(webhook_id: str, data: SettingsBody) -> dict[str, Any]:
    return settings_json(await _patch(await native.webhook_or_404(webhook_id), data))


@blueprint.delete("/settings/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.delete")
async def delete_settings(webhook_id: str) -> tuple[str, int]:
    if not await app_ctx().store.webhooks.delete(principal().tenant_id, webhook_id):
        raise native.webhook_not_found(webhook_id)
    return "", 204


# ---------------------------------------------------------------- legacy single-webhook form


@blueprint.get("/settings")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def get_legacy_settings() -> dict[str, Any]:
    return settings_json(await _oldest())


@blueprint.patch("/settings")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.update")
@json_body(SettingsBody)
async def patch_legacy_settings(data: SettingsBody) -> dict[str, Any]:
    current = await _oldest()
    hook = await _create(data) if current is None else await _patch(current, data)
    return settings_json(hook)


# ---------------------------------------------------------------- signing


async def _signed(hook: Webhook | None, enabled: bool | None) -> dict[str, Any]:
    if hook is None:
        raise native.webhook_not_found("(oldest)")
    if enabled is not None and enabled != hook.signed:
        saved = await app_ctx().store.webhooks.update(native.with_signing(hook, enabled))
        hook = saved or hook
    return {"id": hook.id, "public_key": hook.signing_public_key or ""}


@blueprint.get("/settings/signed")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def get_legacy_signed() -> dict[str, Any]:
    return {"public_key": (await _signed(await _oldest(), None))["public_key"]}


@blueprint.patch("/settings/signed")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.update")
@json_body(SignedBody)
async def patch_legacy_signed(data: SignedBody) -> dict[str, Any]:
    return {"public_key": (await _signed(await _oldest(), data.enabled))["public_key"]}


@blueprint.get("/settings/signed/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.read")
async def get_signed(webhook_id: str) -> dict[str, Any]:
    return await _signed(await native.webhook_or_404(webhook_id), None)


@blueprint.patch("/settings/signed/<webhook_id>")
@tag(["Webhooks"])
@requires("user.webhooks.event.settings.update")
@json_body(SignedBody)
async def patch_signed(webhook_id: str, data: SignedBody) -> dict[str, Any]:
    return await _signed(await native.webhook_or_404(webhook_id), data.enabled)


# ---------------------------------------------------------------- test


@blueprint.post("/test")
@tag(["Webhooks"])
@requires("user.webhooks.event.test.create")
@json_body(TestBody)
async def test_settings(data: TestBody) -> tuple[str, int]:
    _no_oauth(data)
    url = native.check_url(data.url)
    hook = await native.webhook_or_404(data.id) if data.id else None
    if hook is None:
        now = time.time()
        hook = Webhook(
            "", principal().tenant_id, url, None, True, (), "sendgrid", False, None, None,
            None, None, None, now, now,
        )  # fmt: skip
        await send_test(app_ctx(), hook, record=False)
    else:
        await send_test(app_ctx(), dataclasses.replace(hook, url=url))
    return "", 204
