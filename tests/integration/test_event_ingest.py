"""``POST /v3/events/ingest``: an MTA agent's reports, on both engines."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import pytest

from appliance.domain.delivery_outcome import Attempt, Route, delivered, refused
from appliance.domain.retry_schedule import RetryPolicy
from appliance.protocols.smtp_reply import Reply
from appliance.provisioning import create_full_access_key
from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain

ROUTE = Route(mx_host="relay.example.net", ip=None, tls=True, relay="mta1")


@pytest.fixture
async def app(appliance_any_db: RunningAppliance) -> RunningAppliance:
    await verified_domain(appliance_any_db, "ingest.example.com")
    return appliance_any_db


@pytest.fixture
async def client(app: RunningAppliance) -> Any:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as c:
        yield c


async def _ingestion_key(app: RunningAppliance, client: httpx.AsyncClient) -> str:
    r = await client.post(
        "/v3/api_keys",
        headers=app.auth(),
        json={"name": "mta1 agent", "scopes": ["events.ingest.create"]},
    )
    assert r.status_code == 201, r.text
    key: str = r.json()["api_key"]
    return key


async def _sent(app: RunningAppliance, client: httpx.AsyncClient, *emails: str) -> dict[str, str]:
    """Send one message per address and hand them all to the relay as our delivery does:
    claimed, then ``delivered`` (the relay took it). Returns address -> message id."""
    body = {
        "personalizations": [{"to": [{"email": e}]} for e in emails],
        "from": {"email": "app@ingest.example.com"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hi"}],
    }
    r = await client.post("/v3/mail/send", headers=app.auth(), json=body)
    assert r.status_code == 202, r.text
    store = app.ctx.store
    claimed = await store.queue.claim("test", limit=100, lease_seconds=60, now=time.time() + 1)
    assert len(claimed) == len(emails)
    ok = Reply.build(250, "2.0.0", "queued as ABC")
    outcomes = [
        delivered(Attempt(m.id, m.tenant_id, m.recipient, m.request_id, 0), ok, ROUTE, now=0)
        for m in claimed
    ]
    await store.queue.record(outcomes, now=time.time())
    return {m.recipient: m.id for m in claimed}


async def _ingest(
    app: RunningAppliance, client: httpx.AsyncClient, key: str, body: Any
) -> httpx.Response:
    return await client.post("/v3/events/ingest", headers=app.auth(key), json=body)


async def test_delivered_bounce_and_deferred_reports(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    ids = await _sent(app, client, "ok@example.org", "gone@example.org", "later@example.org")
    r = await _ingest(
        app,
        client,
        key,
        [
            {
                "message_id": ids["ok@example.org"],
                "event": "delivered",
                "timestamp": 1_700_000_000,
                "smtp_response": "250 2.0.0 OK 1700000000 x-mx.example.org",
                "mta": "mta1.example.net",
            },
            {
                "message_id": ids["gone@example.org"],
                "event": "bounce",
                "smtp_response": "host mx.example.org said: 550 5.1.1 <gone@example.org>: "
                "Recipient address rejected: User unknown (in reply to RCPT TO command)",
                "bounce_type": "hard",
                "mta": "mta1.example.net",
            },
            {"message_id": ids["later@example.org"], "event": "deferred", "mta": "mta1"},
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == ["stored", "stored", "accepted_not_stored"]
    assert (body["stored"], body["not_stored"], body["errors"]) == (2, 1, 0)

    store = app.ctx.store
    ok = await store.messages.get(None, ids["ok@example.org"])
    gone = await store.messages.get(None, ids["gone@example.org"])
    later = await store.messages.get(None, ids["later@example.org"])
    assert ok is not None and ok.status.value == "DELIVERED"
    assert gone is not None and gone.status.value == "BOUNCED"
    assert gone.error_message is not None and "mailbox does not exist" in gone.error_message
    assert later is not None and later.status.value == "DELIVERED"  # deferred changed nothing

    ok_events = await store.messages.events_for(ids["ok@example.org"])
    ingested = [e for e in ok_events if e.data.get("source") == "ingest"]
    assert [e.event_type for e in ingested] == ["delivered"]
    assert ingested[0].created_at == 1_700_000_000
    bounce = [e for e in await store.messages.events_for(gone.id) if e.event_type == "bounce"]
    assert len(bounce) == 1
    assert bounce[0].data["bounce_type"] == "hard"
    assert bounce[0].data["status"] == "5.1.1"
    assert bounce[0].data["metadata"]["mta"] == "mta1.example.net"
    later_types = [e.event_type for e in await store.messages.events_for(later.id)]
    assert "deferred" not in later_types
    listed = await client.get("/v3/suppression/bounces", headers=app.auth())
    assert [e["email"] for e in listed.json()] == ["gone@example.org"]


async def test_a_bounce_we_recorded_ourselves_is_not_recorded_again(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    r = await client.post(
        "/v3/mail/send",
        headers=app.auth(),
        json={
            "personalizations": [{"to": [{"email": "gone@example.org"}]}],
            "from": {"email": "app@ingest.example.com"},
            "subject": "Hi",
            "content": [{"type": "text/plain", "value": "Hi"}],
        },
    )
    assert r.status_code == 202
    store = app.ctx.store
    [m] = await store.queue.claim("test", limit=10, lease_seconds=60, now=time.time() + 1)
    own = refused(
        Attempt(m.id, m.tenant_id, m.recipient, m.request_id, 0),
        Reply.build(550, "5.1.1", "User unknown"),
        ROUTE,
        policy=RetryPolicy(),
        rng=random.Random(1),
        now=time.time(),
    )
    assert await store.queue.record([own], now=time.time()) == [m.id]

    report = {"message_id": m.id, "event": "bounce", "smtp_response": "550 5.1.1 User unknown"}
    first = await _ingest(app, client, key, [report, report])
    assert [x["status"] for x in first.json()["results"]] == ["duplicate", "duplicate"]
    bounces = [e for e in await store.messages.events_for(m.id) if e.event_type == "bounce"]
    assert len(bounces) == 1 and bounces[0].data.get("source") is None


async def test_an_ingested_bounce_is_recorded_once_and_agent_retries_are_duplicates(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    ids = await _sent(app, client, "full@example.org")
    report = {
        "message_id": ids["full@example.org"],
        "event": "bounce",
        "smtp_response": "452 4.2.2 Mailbox full",
        "mta": "mta1",
    }
    first = (await _ingest(app, client, key, [report])).json()["results"][0]
    again = (await _ingest(app, client, key, [report])).json()["results"][0]
    assert first["status"] == "stored" and first["event_id"].startswith("evt_")
    assert again["status"] == "duplicate"
    store = app.ctx.store
    bounces = [
        e
        for e in await store.messages.events_for(ids["full@example.org"])
        if e.event_type == "bounce"
    ]
    assert len(bounces) == 1
    assert bounces[0].data["bounce_type"] == "soft"
    assert "gave up retrying" in bounces[0].data["bounce_reason"]


async def test_unknown_other_tenants_and_unsent_messages_are_per_item_errors(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    ids = await _sent(app, client, "ok@example.org")
    store = app.ctx.store
    other = await store.tenants.create("Other")
    other_key = await create_full_access_key(store, other.id, "other")
    r = await _ingest(
        app,
        client,
        other_key,
        [{"message_id": ids["ok@example.org"], "event": "delivered"}],
    )
    assert r.status_code == 200
    [item] = r.json()["results"]
    assert item["status"] == "error" and item["error"]["field"] == "message_id"

    r = await _ingest(
        app,
        client,
        key,
        [
            {"message_id": "msg_nope", "event": "delivered"},
            {"message_id": ids["ok@example.org"], "event": "opened"},
            {"message_id": ids["ok@example.org"], "event": "bounce", "bounce_type": "mild"},
            "not an object",
            {"message_id": ids["ok@example.org"], "event": "delivered"},
        ],
    )
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["error", "error", "error", "error", "stored"]
    assert "belongs to the key's tenant" in results[0]["error"]["message"]
    assert results[1]["error"]["field"] == "event"
    assert results[2]["error"]["field"] == "bounce_type"


async def test_a_message_not_yet_sent_cannot_be_reported_on(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    r = await client.post(
        "/v3/mail/send",
        headers=app.auth(),
        json={
            "personalizations": [{"to": [{"email": "q@example.org"}]}],
            "from": {"email": "app@ingest.example.com"},
            "subject": "Hi",
            "content": [{"type": "text/plain", "value": "Hi"}],
        },
    )
    x_message_id = r.headers["X-Message-Id"]
    queued = await app.ctx.store.messages.events_for_request(x_message_id)
    message_id = queued[0].message_id
    r = await _ingest(app, client, key, [{"message_id": message_id, "event": "delivered"}])
    [item] = r.json()["results"]
    assert item["status"] == "error"
    assert "QUEUED" in item["error"]["message"]


async def test_ingestion_needs_its_scope_and_an_ingestion_key_can_do_nothing_else(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    send_only = await client.post(
        "/v3/api_keys", headers=app.auth(), json={"name": "s", "scopes": ["mail.send"]}
    )
    r = await _ingest(app, client, send_only.json()["api_key"], [])
    assert r.status_code == 403
    assert r.json()["errors"][0]["message"] == "Missing required scope: events.ingest.create"
    r = await client.post("/v3/mail/send", headers=app.auth(key), json={})
    assert r.status_code == 403
    r = await client.get("/v3/messages", headers=app.auth(key))
    assert r.status_code == 403


async def test_a_malformed_body_is_a_400_that_shows_the_shape(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    key = await _ingestion_key(app, client)
    for body in ({"message_id": "x"}, []):
        r = await _ingest(app, client, key, body)
        assert r.status_code == 400
        assert "message_id" in r.json()["errors"][0]["help"]
