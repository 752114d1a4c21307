"""Webhooks end to end: real sends, a real local HTTP receiver, SendGrid's verifier.

The dispatcher runs as in production (``services.webhooks``) with short
polling; events come from ``POST /v3/mail/send`` (``processed``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from sendgrid.helpers.eventwebhook import EventWebhook

from appliance.services.webhooks import WebhookDispatcher, WebhookSettings
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.supervisor import ServiceSpec
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain
from tests.support.webhook_receiver import Received, Receiver, open_receiver

SIG = "x-twilio-email-event-webhook-signature"
TS = "x-twilio-email-event-webhook-timestamp"
FROM = "sender@mail.example.test"


def _dispatcher_spec(app_ctx: Any, **settings: Any) -> ServiceSpec:
    async def run(health: Any, *, task_status: trio.TaskStatus[None]) -> None:
        dispatcher = WebhookDispatcher(
            app_ctx, WebhookSettings.from_context(app_ctx, poll_interval=0.05, **settings)
        )
        await dispatcher.run(health, task_status=task_status)

    return ServiceSpec("webhooks", run)


@pytest.fixture
async def hooked(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    """HTTP plus a fast-polling dispatcher retrying after 50 ms, on each engine."""
    config = appliance_config(tmp_path / "data", database_url)
    async with run_appliance(config, services=("http",)) as app:
        spec = _dispatcher_spec(app.ctx, retry_base=0.05, retry_max=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(spec.run, app.ctx.health.register("webhooks")))
            await verified_domain(app, "mail.example.test")
            yield app
            nursery.cancel_scope.cancel()


async def _client(app: RunningAppliance) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=30)


async def _send(http: httpx.AsyncClient, recipients: list[str]) -> str:
    body = {
        "personalizations": [
            {"to": [{"email": r}], "custom_args": {"order": "42"}} for r in recipients
        ],
        "from": {"email": FROM},
        "subject": "hi",
        "content": [{"type": "text/plain", "value": "hello"}],
        "categories": ["welcome"],
    }
    response = await http.post("/v3/mail/send", json=body)
    assert response.status_code == 202, response.text
    return response.headers["X-Message-Id"]


def _events(requests: list[Received]) -> list[dict[str, Any]]:
    return [e for r in requests for e in json.loads(r.body)]


async def _wait_for(receiver: Receiver, count: int) -> list[Received]:
    with trio.fail_after(20):
        return await receiver.wait_for(count)


async def test_signed_sendgrid_batches_verify_with_sendgrid_helper(
    hooked: RunningAppliance,
) -> None:
    async with open_receiver() as receiver, await _client(hooked) as http:
        created = await http.post(
            "/v3/user/webhooks", json={"url": receiver.url, "signed": True, "format": "sendgrid"}
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["signed"] and hook["public_key"] and hook["disabled_at"] is None
        x_id = await _send(http, ["a@example.test", "b@example.test"])

        while len(_events(receiver.requests)) < 2:
            await _wait_for(receiver, len(receiver.requests) + 1)
        helper = EventWebhook(hook["public_key"])
        for request in receiver.requests:
            assert request.method == "POST" and request.path == "/hook"
            assert request.headers["content-type"] == "application/json"
            assert request.body.endswith(b"\r\n")
            assert helper.verify_signature(
                request.body.decode(), request.headers[SIG], request.headers[TS]
            )
            assert not helper.verify_signature(
                request.body.decode() + " ", request.headers[SIG], request.headers[TS]
            )
        items = sorted(_events(receiver.requests), key=lambda e: e["email"])
        assert [(e["email"], e["event"]) for e in items] == [
            ("a@example.test", "processed"),
            ("b@example.test", "processed"),
        ]
        for item in items:
            assert item["sg_message_id"].startswith(x_id + ".msg_")
            assert item["sg_event_id"].startswith("evt_")
            assert item["smtp-id"].endswith("@mail.example.test>")
            assert item["category"] == "welcome" and item["order"] == "42"
            assert isinstance(item["timestamp"], int)

        with trio.fail_after(20):  # the attempt is recorded once the receiver has answered
            while await hooked.ctx.store.webhooks.pending():
                await trio.sleep(0.02)
        deliveries = (await http.get(f"/v3/user/webhooks/{hook['id']}/deliveries")).json()["result"]
        assert deliveries and all(d["status_code"] == 200 and d["ok"] for d in deliveries)
        assert sum(d["events"] for d in deliveries) == 2


async def test_a_500_is_retried_and_nothing_is_lost(hooked: RunningAppliance) -> None:
    async with open_receiver() as receiver, await _client(hooked) as http:
        answers = iter([500])
        receiver.answer = lambda _r: (next(answers, 200), {}, b"later")
        hook = (await http.post("/v3/user/webhooks", json={"url": receiver.url})).json()
        await _send(http, ["a@example.test"])
        requests = await _wait_for(receiver, 2)
        assert json.loads(requests[0].body) == json.loads(requests[1].body)  # the same batch again
        (event,) = json.loads(requests[1].body)
        assert event["event_type"] == "processed" and event["recipient_email"] == "a@example.test"
        assert event["tenant_id"] == hooked.init.tenant_id and event["event_id"].startswith("evt_")
        with trio.fail_after(10):
            while await hooked.ctx.store.webhooks.pending():
                await trio.sleep(0.02)
        deliveries = (await http.get(f"/v3/user/webhooks/{hook['id']}/deliveries")).json()["result"]
        assert [d["status_code"] for d in deliveries] == [200, 500]  # newest first
        assert "only a 2xx answer counts" in deliveries[1]["error"]
        assert deliveries[1]["response_snippet"] == "later"
        assert len(receiver.requests) == 2


async def test_redirects_are_not_followed(hooked: RunningAppliance) -> None:
    async with open_receiver() as receiver, await _client(hooked) as http:
        receiver.answer = lambda r: (
            (302, {"Location": receiver.url + "/elsewhere"}, b"")
            if r.path == "/hook"
            else (200, {}, b"ok")
        )
        hook = (await http.post("/v3/user/webhooks", json={"url": receiver.url})).json()
        response = await http.post(f"/v3/user/webhooks/{hook['id']}/test")
        assert response.status_code == 200
        result = response.json()
        assert not result["ok"] and result["status_code"] == 302
        assert "redirects are not followed; point the webhook at the final URL" in result["error"]
        assert [r.path for r in receiver.requests] == ["/hook"]
        (attempt,) = (await http.get(f"/v3/user/webhooks/{hook['id']}/deliveries")).json()["result"]
        assert attempt["test"] and attempt["status_code"] == 302


async def test_test_endpoint_sends_a_signed_sample(hooked: RunningAppliance) -> None:
    async with open_receiver() as receiver, await _client(hooked) as http:
        hook = (
            await http.post(
                "/v3/user/webhooks", json={"url": receiver.url, "signed": True, "enabled": False}
            )
        ).json()
        result = (await http.post(f"/v3/user/webhooks/{hook['id']}/test")).json()
        assert result["ok"] and result["status_code"] == 200 and result["response_snippet"] == "ok"
        (request,) = receiver.requests
        assert EventWebhook(hook["public_key"]).verify_signature(
            request.body.decode(), request.headers[SIG], request.headers[TS]
        )
        assert [e["event_type"] for e in json.loads(request.body)] == ["processed", "delivered"]


async def test_large_batches_are_split_under_768_kb(hooked: RunningAppliance) -> None:
    store = hooked.ctx.store
    async with open_receiver() as receiver, await _client(hooked) as http:
        await http.post("/v3/user/webhooks", json={"url": receiver.url})
        tenant = hooked.init.tenant_id
        rows = [
            event_row(tenant, None, "processed", None, {"blob": "x" * 300_000}, 1.0 + i)
            for i in range(4)
        ]
        await store.db.write(lambda c: append_events(c, rows))
        with trio.fail_after(20):
            while await store.webhooks.pending():
                await trio.sleep(0.02)
        assert all(len(r.body) <= 768 * 1024 for r in receiver.requests)
        assert len(receiver.requests) >= 2
        assert sorted(e["event_id"] for e in _events(receiver.requests)) == sorted(
            r["id"] for r in rows
        )


async def test_a_key_that_cannot_be_read_is_a_failed_attempt_not_a_crash(
    hooked: RunningAppliance,
) -> None:
    store = hooked.ctx.store
    async with open_receiver() as receiver, await _client(hooked) as http:
        made = (
            await http.post("/v3/user/webhooks", json={"url": receiver.url, "signed": True})
        ).json()
        hook = await store.webhooks.get(hooked.init.tenant_id, made["id"])
        assert hook is not None
        await store.webhooks.update(dataclasses.replace(hook, signing_private_key="not-a-token"))
        await _send(http, ["a@example.test"])
        with trio.fail_after(20):
            while not (await store.webhooks.attempts(hook.id)):
                await trio.sleep(0.02)
        (attempt, *_) = await store.webhooks.attempts(hook.id)
        assert attempt.status_code is None and attempt.error is not None
        assert attempt.error.startswith("cannot sign the batch")
        assert receiver.requests == []  # and the dispatcher did not crash (the fixture would raise)
