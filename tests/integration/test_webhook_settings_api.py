"""SendGrid's Event Webhook settings forms (compat §6), legacy and per id, and the native
``/v3/user/webhooks`` CRUD: same rows, SendGrid's shapes, errors that say what to fix."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from python_http_client.exceptions import BadRequestsError
from sendgrid import SendGridAPIClient

from appliance.services.webhooks import WebhookSettings, retry_delay
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain
from tests.support.webhook_receiver import open_receiver

FLAGS = [
    "bounce",
    "click",
    "deferred",
    "delivered",
    "dropped",
    "group_resubscribe",
    "group_unsubscribe",
    "open",
    "processed",
    "spam_report",
    "unsubscribe",
]


def _sg(app: RunningAppliance) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=app.api_key, host=app.base_url)


async def _call(fn: Any) -> Any:
    response = await trio.to_thread.run_sync(fn)
    return response.status_code, json.loads(response.body) if response.body else None


async def test_legacy_single_webhook_form_with_the_sendgrid_client(
    appliance: RunningAppliance,
) -> None:
    settings = _sg(appliance).client.user.webhooks.event.settings
    status, empty = await _call(settings.get)
    assert status == 200 and empty["enabled"] is False and empty["url"] == ""
    assert not any(empty[f] for f in FLAGS)

    body = {
        "enabled": True,
        "url": "https://hooks.example.test/sg",
        "delivered": True,
        "spam_report": True,
    }
    status, made = await _call(lambda: settings.patch(request_body=body))
    assert status == 200 and made["enabled"] and made["url"] == body["url"]
    assert {f for f in FLAGS if made[f]} == {"delivered", "spam_report"}

    status, signed = await _call(lambda: settings.signed.patch(request_body={"enabled": True}))
    assert status == 200 and len(signed["public_key"]) > 80
    status, again = await _call(settings.signed.get)
    assert again == {"public_key": signed["public_key"]}

    # The same row through the native API: SendGrid format, filter from the flags.
    async with httpx.AsyncClient(base_url=appliance.base_url, headers=appliance.auth()) as http:
        (hook,) = (await http.get("/v3/user/webhooks")).json()["result"]
    assert hook["format"] == "sendgrid" and hook["signed"]
    assert sorted(hook["event_types"]) == ["delivered", "spamreport"]

    status, off = await _call(
        lambda: settings.patch(request_body={"delivered": False, "spam_report": False})
    )
    assert not any(off[f] for f in FLAGS)

    with pytest.raises(BadRequestsError) as caught:
        await trio.to_thread.run_sync(
            lambda: settings.patch(request_body={"oauth_client_id": "abc", "url": body["url"]})
        )
    (error,) = json.loads(caught.value.body)["errors"]
    assert "OAuth" in error["message"] and error["field"] == "oauth_client_id"


async def test_multi_webhook_form_and_native_crud(appliance: RunningAppliance) -> None:
    async with httpx.AsyncClient(base_url=appliance.base_url, headers=appliance.auth()) as http:
        made = await http.post(
            "/v3/user/webhooks/event/settings",
            json={
                "url": "https://a.example.test/",
                "enabled": True,
                "processed": True,
                "friendly_name": "A",
            },
        )
        assert made.status_code == 201, made.text
        a = made.json()
        assert a["id"].startswith("whk_") and a["processed"] and not a["bounce"]
        assert a["created_date"].endswith("Z")
        second = await http.post(
            "/v3/user/webhooks", json={"url": "https://b.example.test/", "event_types": ["bounce"]}
        )
        assert second.status_code == 201
        b = second.json()
        assert b["format"] == "postyard" and b["enabled"] and b["public_key"] is None

        listing = (await http.get("/v3/user/webhooks/event/settings/all")).json()
        assert listing["max_allowed"] == 5 and [w["id"] for w in listing["webhooks"]] == [
            a["id"],
            b["id"],
        ]
        assert listing["webhooks"][1]["bounce"] and not listing["webhooks"][1]["delivered"]

        same_url = await http.post("/v3/user/webhooks", json={"url": "https://a.example.test/"})
        assert same_url.status_code == 400 and a["id"] in same_url.json()["errors"][0]["message"]
        bad = await http.post("/v3/user/webhooks", json={"url": "ftp://x", "event_types": ["nope"]})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "url"
        bad = await http.post(
            "/v3/user/webhooks", json={"url": "https://c.test/", "event_types": ["nope"]}
        )
        assert bad.json()["errors"][0]["field"] == "event_types"
        assert "'nope'" in bad.json()["errors"][0]["message"]
        bad = await http.post("/v3/user/webhooks", json={"url": "https://c.test/", "format": "xml"})
        assert bad.json()["errors"][0]["field"] == "format"

        patched = await http.patch(
            f"/v3/user/webhooks/event/settings/{b['id']}",
            json={"delivered": True, "url": "https://b2.example.test/"},
        )
        assert (
            patched.status_code == 200 and patched.json()["delivered"] and patched.json()["bounce"]
        )
        signed = (
            await http.patch(
                f"/v3/user/webhooks/event/settings/signed/{b['id']}", json={"enabled": True}
            )
        ).json()
        assert signed["id"] == b["id"] and signed["public_key"]
        native = (await http.get(f"/v3/user/webhooks/{b['id']}")).json()
        assert (
            native["url"] == "https://b2.example.test/"
            and native["public_key"] == signed["public_key"]
        )
        unsigned = (await http.patch(f"/v3/user/webhooks/{b['id']}", json={"signed": False})).json()
        assert unsigned["signed"] is False and unsigned["public_key"] is None
        off = (await http.patch(f"/v3/user/webhooks/{b['id']}", json={"enabled": False})).json()
        assert off["enabled"] is False

        assert (await http.delete(f"/v3/user/webhooks/event/settings/{a['id']}")).status_code == 204
        assert (await http.delete(f"/v3/user/webhooks/{b['id']}")).status_code == 204
        missing = await http.get(f"/v3/user/webhooks/{b['id']}")
        assert (
            missing.status_code == 404
            and "GET /v3/user/webhooks" in missing.json()["errors"][0]["help"]
        )


async def test_webhooks_need_their_scopes(appliance: RunningAppliance) -> None:
    async with httpx.AsyncClient(base_url=appliance.base_url, headers=appliance.auth()) as http:
        key = (
            await http.post(
                "/v3/api_keys", json={"name": "r", "scopes": ["user.webhooks.event.settings.read"]}
            )
        ).json()
        limited = appliance.auth(key["api_key"])
        assert (await http.get("/v3/user/webhooks", headers=limited)).status_code == 200
        refused = await http.post(
            "/v3/user/webhooks", headers=limited, json={"url": "https://x.test/"}
        )
        assert refused.status_code == 403
        assert (
            refused.json()["errors"][0]["message"]
            == "Missing required scope: user.webhooks.event.settings.create"
        )


async def test_sendgrid_test_endpoint_posts_a_sample(appliance: RunningAppliance) -> None:
    async with open_receiver() as receiver:
        status, _ = await _call(
            lambda: _sg(appliance).client.user.webhooks.event.test.post(
                request_body={"url": receiver.url}
            )
        )
        assert status == 204
        (request,) = receiver.requests
        assert [e["event"] for e in json.loads(request.body)] == ["processed", "delivered"]


async def test_the_registered_service_delivers(tmp_path: Any, sqlite_url: str) -> None:
    """The "webhooks" service of runner.service_specs, with its production settings."""
    config = appliance_config(tmp_path / "data", sqlite_url)
    async with (
        run_appliance(config, services=("http", "webhooks")) as app,
        open_receiver() as receiver,
    ):
        await verified_domain(app, "mail.example.test")
        async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
            await http.post(
                "/v3/user/webhooks", json={"url": receiver.url, "event_types": ["processed"]}
            )
            sent = await http.post(
                "/v3/mail/send",
                json={
                    "personalizations": [{"to": [{"email": "a@example.test"}]}],
                    "from": {"email": "s@mail.example.test"},
                    "subject": "s",
                    "content": [{"type": "text/plain", "value": "x"}],
                },
            )
            assert sent.status_code == 202
        with trio.fail_after(20):
            (request,) = await receiver.wait_for(1)
        assert json.loads(request.body)[0]["event_type"] == "processed"
        details = app.ctx.health.services["webhooks"].details
        assert "webhooks" in details


def test_retry_delay_doubles_from_30_s_to_an_hour() -> None:
    settings = WebhookSettings()
    assert [retry_delay(n, settings) for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]  # fmt: skip
