"""``GET /v3/events/stream``: live events over a real websocket (trio-websocket client)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
    wrap_client_stream,
)

from appliance.provisioning import create_full_access_key
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain


def _ws_url(app: RunningAppliance, query: str = "") -> str:
    return app.base_url.replace("http://", "ws://") + "/v3/events/stream" + query


def _auth(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", f"Bearer {key}".encode())]


@asynccontextmanager
async def _stream(
    app: RunningAppliance, query: str = "", key: str | None = None
) -> AsyncIterator[WebSocketConnection]:
    async with open_websocket_url(
        _ws_url(app, query), extra_headers=_auth(key or app.api_key)
    ) as ws:
        yield ws


async def _next(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(5):
        data: dict[str, Any] = json.loads(await ws.get_message())
        return data


async def _send(app: RunningAppliance, http: httpx.AsyncClient, to: list[str]) -> None:
    body = {
        "personalizations": [{"to": [{"email": e}]} for e in to],
        "from": {"email": "news@stream.example.com"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
    }
    r = await http.post("/v3/mail/send", headers=app.auth(), json=body)
    assert r.status_code == 202, r.text


@pytest.fixture
async def sender(appliance: RunningAppliance) -> RunningAppliance:
    await verified_domain(appliance, "stream.example.com")
    return appliance


async def test_a_connected_client_receives_processed_events_of_a_send(
    sender: RunningAppliance, http: httpx.AsyncClient
) -> None:
    async with _stream(sender) as ws:
        await _send(sender, http, ["a@example.org", "b@example.org"])
        got = [await _next(ws), await _next(ws)]
    assert {e["event_type"] for e in got} == {"processed"}
    assert {e["recipient_email"] for e in got} == {"a@example.org", "b@example.org"}
    assert all(e["tenant_id"] == sender.init.tenant_id for e in got)
    assert all(e["event_id"].startswith("evt_") for e in got)


async def test_filters_by_event_type_and_message_id(
    sender: RunningAppliance, http: httpx.AsyncClient
) -> None:
    store = sender.ctx.store
    tenant = sender.init.tenant_id
    async with (
        _stream(sender, "?event_type=delivered&event_type=bounce") as by_type,
        _stream(sender, "?message_id=msg_b,msg_c") as by_message,
    ):
        rows = [
            event_row(tenant, "msg_a", "processed", "a@example.org", {}, 1.0),
            event_row(tenant, "msg_a", "delivered", "a@example.org", {}, 2.0),
            event_row(tenant, "msg_b", "processed", "b@example.org", {}, 3.0),
            event_row(tenant, "msg_c", "bounce", "c@example.org", {"bounce_type": "hard"}, 4.0),
        ]
        await store.db.write(lambda c: append_events(c, rows))
        typed = [await _next(by_type), await _next(by_type)]
        messaged = [await _next(by_message), await _next(by_message)]
    assert [(e["message_id"], e["event_type"]) for e in typed] == [
        ("msg_a", "delivered"),
        ("msg_c", "bounce"),
    ]
    assert [(e["message_id"], e["event_type"]) for e in messaged] == [
        ("msg_b", "processed"),
        ("msg_c", "bounce"),
    ]


async def test_another_tenants_events_are_not_streamed(sender: RunningAppliance) -> None:
    store = sender.ctx.store
    other = await store.tenants.create("Other")
    rows = [
        event_row(other.id, "msg_x", "processed", "x@example.org", {}, 1.0),
        event_row(sender.init.tenant_id, "msg_y", "processed", "y@example.org", {}, 2.0),
    ]
    async with _stream(sender) as ws:
        await store.db.write(lambda c: append_events(c, rows))
        first = await _next(ws)
    assert first["message_id"] == "msg_y"


async def test_missing_bad_or_unscoped_keys_are_refused_before_the_upgrade(
    sender: RunningAppliance, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ConnectionRejected) as missing:
        async with open_websocket_url(_ws_url(sender)):
            pass
    assert missing.value.status_code == 401
    with pytest.raises(ConnectionRejected) as bad:
        async with open_websocket_url(_ws_url(sender), extra_headers=_auth("SG.nope.nope")):
            pass
    assert bad.value.status_code == 401

    r = await http.post(
        "/v3/api_keys", headers=sender.auth(), json={"name": "send only", "scopes": ["mail.send"]}
    )
    assert r.status_code == 201, r.text
    with pytest.raises(ConnectionRejected) as unscoped:
        async with _stream(sender, key=r.json()["api_key"]):
            pass
    assert unscoped.value.status_code == 403
    body = json.loads(unscoped.value.body or b"{}")
    assert body["errors"][0]["message"] == "Missing required scope: events.stream.read"


async def test_a_key_of_another_tenant_streams_only_its_own(sender: RunningAppliance) -> None:
    store = sender.ctx.store
    other = await store.tenants.create("Other")
    key = await create_full_access_key(store, other.id, "other")
    rows = [
        event_row(sender.init.tenant_id, "msg_mine", "processed", "m@example.org", {}, 1.0),
        event_row(other.id, "msg_theirs", "processed", "t@example.org", {}, 2.0),
    ]
    async with _stream(sender, key=key) as ws:
        await store.db.write(lambda c: append_events(c, rows))
        assert (await _next(ws))["message_id"] == "msg_theirs"


async def _read_until_closed(ws: WebSocketConnection) -> tuple[int, CloseReason]:
    got = 0
    while True:
        try:
            await ws.get_message()
        except ConnectionClosed as closed:
            return got, closed.reason
        got += 1


@asynccontextmanager
async def _unread_stream(app: RunningAppliance) -> AsyncIterator[WebSocketConnection]:
    """A client with a tiny receive buffer that reads nothing until told to."""
    url = urlsplit(app.base_url)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((url.hostname, url.port))
    stream = trio.SocketStream(sock)
    async with trio.open_nursery() as nursery:
        ws = await wrap_client_stream(
            nursery,
            stream,
            f"{url.hostname}:{url.port}",
            "/v3/events/stream",
            extra_headers=_auth(app.api_key),
            message_queue_size=1,
        )
        try:
            yield ws
        finally:
            await ws.aclose()


async def test_a_slow_client_is_dropped_with_1008_while_another_keeps_receiving(
    tmp_path: Path, sqlite_url: str
) -> None:
    burst = 250
    config = appliance_config(tmp_path / "data", sqlite_url, event_stream_buffer=burst + 50)
    async with run_appliance(config) as app:
        store = app.ctx.store
        tenant = app.init.tenant_id
        padding = "x" * 16000
        count = 2000  # 32 MB: more than the socket buffers and the slow client's channel hold
        received: list[str] = []
        async with _stream(app) as fast, _unread_stream(app) as slow:
            async with trio.open_nursery() as nursery:

                async def read_all() -> None:
                    while len(received) < count + 1:
                        received.append((await _next(fast))["message_id"])

                nursery.start_soon(read_all)
                for start in range(0, count, burst):
                    rows = [
                        event_row(tenant, f"msg_{i}", "processed", "a@x.org", {"pad": padding}, i)
                        for i in range(start, start + burst)
                    ]
                    await store.db.write(lambda c, rows=rows: append_events(c, rows))
                    # The fast client keeps up: it has read each burst before the next one.
                    with trio.fail_after(10):
                        while len(received) < start + burst:
                            await trio.sleep(0.01)
                last = [event_row(tenant, "msg_last", "processed", "a@x.org", {}, 1e6)]
                await store.db.write(lambda c: append_events(c, last))
            assert received[-1] == "msg_last"
            assert len(received) == count + 1
            # The slow client now reads: what was buffered for it, then the close.
            with trio.fail_after(20):
                got, reason = await _read_until_closed(slow)
        assert got < count
        assert reason.code == 1008
        assert reason.reason == "client too slow"


async def test_clients_are_told_going_away_when_the_appliance_shuts_down(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with run_appliance(appliance_config(tmp_path / "data", sqlite_url)) as app:
        async with _stream(app) as ws:
            app.ctx.shutdown.set()
            with trio.fail_after(5):
                got, reason = await _read_until_closed(ws)
    assert got == 0
    assert reason.code == 1001
