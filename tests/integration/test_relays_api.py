"""``/api/admin/relays`` over real HTTP, and the relay test against a real aiosmtpd relay.

CRUD runs on SQLite and PostgreSQL. The relay tests start the aiosmtpd sink
(tests/support/smtpsink_aiosmtpd.py) as a subprocess on 127.0.0.1 with
STARTTLS or implicit TLS and AUTH, and assert both the step-by-step answer
and what the sink received. The appliance trusts the sink's self-signed
certificate through ``SSL_CERT_FILE`` (read by ``ssl.create_default_context``
whenever a context is made), as an operator's CA bundle would be trusted.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.store.relays import Relay
from tests.support.appliance import RunningAppliance
from tests.support.smtp_sink import StartSink
from tests.support.tls_certs import TlsCertificate, make_self_signed

API = "/api/admin/relays"
USER, PASSWORD = "relay-user", "s3cret-Pa55"
FROM, TO = "app@postyard.test", "ops@example.com"

Json = dict[str, Any]


@pytest.fixture
async def client(appliance_any_db: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=appliance_any_db.base_url, headers=appliance_any_db.auth(), timeout=10
    ) as c:
        yield c


@pytest.fixture
def cert(tmp_path: Path) -> TlsCertificate:
    return make_self_signed(tmp_path / "tls")


@pytest.fixture
def trusted(cert: TlsCertificate, monkeypatch: pytest.MonkeyPatch) -> TlsCertificate:
    """The sink's certificate, trusted by the appliance like a CA bundle entry."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert_path))
    return cert


def tls_args(cert: TlsCertificate) -> tuple[str, ...]:
    return ("--cert", str(cert.cert_path), "--key", str(cert.key_path))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def relay_test(http: httpx.AsyncClient, auth: dict[str, str], body: Json) -> Json:
    r = await http.post(f"{API}/test", headers=auth, json={"from": FROM, "to": TO, **body})
    assert r.status_code == 200, r.text
    result: Json = r.json()
    return result


def steps(result: Json) -> list[str]:
    return [s["step"] for s in result["steps"]]


def step(result: Json, name: str) -> Json:
    found: Json = next(s for s in result["steps"] if s["step"] == name)
    return found


# ---------------------------------------------------------------- CRUD


async def test_relay_crud_keeps_the_password_encrypted_and_never_returns_it(
    client: httpx.AsyncClient, appliance_any_db: RunningAppliance
) -> None:
    ctx = appliance_any_db.ctx
    r = await client.post(
        API,
        json={
            "name": "smarthost",
            "host": "SMTP.Example.COM.",
            "username": USER,
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"].startswith("rly_")
    assert (created["host"], created["port"], created["tls_mode"]) == (
        "smtp.example.com",
        587,
        "starttls",
    )
    assert (created["verify_tls"], created["username"], created["has_password"]) == (
        True,
        USER,
        True,
    )
    assert created["auth_mechanism"] is None
    assert "password" not in created and PASSWORD not in r.text
    stored = await ctx.store.relays.get(created["id"])
    assert stored is not None and stored.password is not None
    assert PASSWORD not in stored.password and PASSWORD not in repr(stored)
    assert ctx.secrets.decrypt(stored.password) == PASSWORD.encode()

    listed = (await client.get(API)).json()["result"]
    assert [x["id"] for x in listed] == [created["id"]]
    assert all(PASSWORD not in str(x) and "password" not in x for x in listed)
    assert (await client.get(f"{API}/{created['id']}")).json() == created
    assert (await client.get(f"{API}/smarthost")).json()["id"] == created["id"]

    patched = await client.patch(
        f"{API}/{created['id']}",
        json={"port": 2525, "verify_tls": False, "auth_mechanism": "login"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["port"], body["verify_tls"], body["auth_mechanism"]) == (2525, False, "LOGIN")
    assert body["has_password"] is True and PASSWORD not in patched.text
    kept = await ctx.store.relays.get(created["id"])
    assert kept is not None and kept.password == stored.password, "PATCH keeps the password"

    await client.patch(f"{API}/{created['id']}", json={"password": "new-one"})
    changed = await ctx.store.relays.get(created["id"])
    assert changed is not None and changed.password is not None
    assert ctx.secrets.decrypt(changed.password) == b"new-one"

    no_login = await client.patch(f"{API}/{created['id']}", json={"username": None})
    assert (no_login.json()["username"], no_login.json()["has_password"]) == (None, False)
    cleared = await ctx.store.relays.get(created["id"])
    assert cleared is not None and cleared.password is None

    other = await client.post(API, json={"name": "other", "host": "192.0.2.25", "port": 25})
    assert other.status_code == 201
    for response in (
        await client.post(API, json={"name": "smarthost", "host": "x.example.com"}),
        await client.patch(f"{API}/{other.json()['id']}", json={"name": "smarthost"}),
    ):
        assert response.status_code == 409
        error = response.json()["errors"][0]
        assert error["field"] == "name" and "smarthost" in error["message"]

    deleted = await client.delete(f"{API}/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["pools_detached"] == []
    assert "no IP pool used it" in deleted.json()["message"]
    assert (await client.get(f"{API}/{created['id']}")).status_code == 404
    assert (await client.delete(f"{API}/{created['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "bad name!", "host": "smtp.example.com"}, "name", "letters, digits"),
        ({"name": "r", "host": "smtp.example.com:587"}, "host", "port"),
        ({"name": "r", "host": "not a host"}, "host", "not a host name"),
        ({"name": "r"}, "host", "missing"),
        ({"name": "r", "host": "h.example", "port": 0}, "port", "1-65535"),
        ({"name": "r", "host": "h.example", "port": 70000}, "port", "1-65535"),
        ({"name": "r", "host": "h.example", "port": "587"}, "port", "integer"),
        ({"name": "r", "host": "h.example", "tls_mode": "ssl"}, "tls_mode", "starttls"),
        ({"name": "r", "host": "h.example", "verify_tls": "no"}, "verify_tls", "boolean"),
        (
            {"name": "r", "host": "h.example", "auth_mechanism": "CRAM-MD5"},
            "auth_mechanism",
            "PLAIN",
        ),
        ({"name": "r", "host": "h.example", "username": "u"}, "password", "go together"),
        ({"name": "r", "host": "h.example", "password": "p"}, "username", "go together"),
        ({"name": "r", "host": "h.example", "username": "u", "password": ""}, "password", "empty"),
        (
            {
                "name": "r",
                "host": "h.example",
                "tls_mode": "none",
                "username": "u",
                "password": "p",
            },
            "tls_mode",
            "clear text",
        ),
        ({"name": "r", "host": "h.example", "passwd": "p"}, "passwd", "not a recognised field"),
    ],
)
async def test_create_refuses_bad_settings_naming_the_field(
    http: httpx.AsyncClient, appliance: RunningAppliance, body: Json, field: str, words: str
) -> None:
    r = await http.post(API, headers=appliance.auth(), json=body)
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["field"] == field
    assert words in error["message"]
    assert (await http.get(API, headers=appliance.auth())).json()["result"] == []


async def test_patch_checks_the_result_as_a_whole(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    created = (
        await http.post(
            API,
            headers=auth,
            json={"name": "r", "host": "h.example", "username": "u", "password": "p"},
        )
    ).json()
    url = f"{API}/{created['id']}"
    to_plain = await http.patch(url, headers=auth, json={"tls_mode": "none"})
    assert to_plain.status_code == 400 and to_plain.json()["errors"][0]["field"] == "tls_mode"
    no_host = await http.patch(url, headers=auth, json={"host": None})
    assert no_host.status_code == 400 and no_host.json()["errors"][0]["field"] == "host"
    unknown = await http.patch(f"{API}/rly_nope", headers=auth, json={"port": 25})
    assert unknown.status_code == 404
    assert (await http.get(url, headers=auth)).json() == created


async def test_each_route_needs_its_relays_scope(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    key = await http.post(
        "/v3/api_keys", headers=appliance.auth(), json={"name": "reader", "scopes": ["relays.read"]}
    )
    reader = appliance.auth(key.json()["api_key"])
    assert (await http.get(API, headers=reader)).status_code == 200
    needs = [
        ("POST", API, {"name": "r", "host": "h.example"}, "relays.create"),
        ("POST", f"{API}/test", {"host": "127.0.0.1"}, "relays.create"),
        ("PATCH", f"{API}/r", {"port": 25}, "relays.update"),
        ("DELETE", f"{API}/r", None, "relays.delete"),
    ]
    for method, url, body, scope in needs:
        r = await http.request(method, url, headers=reader, json=body)
        assert r.status_code == 403, (method, url)
        assert r.json()["errors"][0]["message"] == f"Missing required scope: {scope}"


# ---------------------------------------------------------------- the relay test


async def test_starttls_and_auth_relay_passes_every_step_and_gets_the_test_message(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    start_sink: StartSink,
    trusted: TlsCertificate,
) -> None:
    sink = await start_sink(*tls_args(trusted), "--auth", f"{USER}:{PASSWORD}")
    auth = appliance.auth()
    relay = (
        await http.post(
            API,
            headers=auth,
            json={
                "name": "sink",
                "host": "127.0.0.1",
                "port": sink.port,
                "username": USER,
                "password": PASSWORD,
            },
        )
    ).json()

    result = await relay_test(http, auth, {"relay_id": relay["id"]})

    assert result["ok"] is True and result["failed_step"] is None, result["message"]
    assert steps(result) == [
        "connect",
        "greeting",
        "ehlo",
        "starttls",
        "ehlo",
        "auth",
        "mail",
        "rcpt",
        "data",
        "quit",
    ]
    assert all(s["ok"] for s in result["steps"])
    assert all(isinstance(s["elapsed_ms"], int) and s["elapsed_ms"] >= 0 for s in result["steps"])
    assert step(result, "greeting")["reply"].startswith("220 ")
    assert "STARTTLS" in result["steps"][2]["detail"]
    assert "certificate verified" in step(result, "starttls")["detail"]
    assert step(result, "auth")["reply"].startswith("235 ")
    assert step(result, "data")["reply"] == "250 2.0.0 queued"
    assert step(result, "quit")["reply"].startswith("221 ")
    assert "accepted the test message" in result["message"]

    [received] = sink.received()
    assert (received["mail_from"], received["rcpt_tos"]) == (FROM, [TO])
    assert received["tls"] is True and received["authenticated"] is True
    assert b"Subject: Postyard relay test" in received["content"]
    assert b"This is a Postyard relay test." in received["content"]


async def test_wrong_password_fails_at_auth_with_the_servers_535(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    start_sink: StartSink,
    trusted: TlsCertificate,
) -> None:
    sink = await start_sink(*tls_args(trusted), "--auth", f"{USER}:{PASSWORD}")
    result = await relay_test(
        http,
        appliance.auth(),
        {"host": "127.0.0.1", "port": sink.port, "username": USER, "password": "wrong"},
    )
    assert result["ok"] is False and result["failed_step"] == "auth"
    failed = step(result, "auth")
    assert failed["ok"] is False and failed["reply"].startswith("535 5.7.8")
    assert steps(result) == ["connect", "greeting", "ehlo", "starttls", "ehlo", "auth", "quit"]
    message = result["message"]
    assert message.startswith("The relay test failed at auth")
    assert "535 5.7.8" in message and "username and password" in message
    assert sink.received() == []


async def test_closed_port_fails_at_connect(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    port = closed_port()
    result = await relay_test(
        http, appliance.auth(), {"host": "127.0.0.1", "port": port, "tls_mode": "none"}
    )
    assert result["ok"] is False and result["failed_step"] == "connect"
    assert steps(result) == ["connect"]
    assert result["steps"][0]["reply"] is None
    assert f"connection refused by 127.0.0.1:{port}" in result["message"]
    assert "reachable from this appliance" in result["message"]


async def test_implicit_tls_relay_passes_with_the_default_addresses(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    start_sink: StartSink,
    trusted: TlsCertificate,
) -> None:
    sink = await start_sink(*tls_args(trusted), "--implicit-tls", "--auth", f"{USER}:{PASSWORD}")
    r = await http.post(
        f"{API}/test",
        headers=appliance.auth(),
        json={
            "host": "127.0.0.1",
            "port": sink.port,
            "tls_mode": "implicit",
            "username": USER,
            "password": PASSWORD,
            "auth_mechanism": "LOGIN",
        },
    )
    result = r.json()
    assert result["ok"] is True, result["message"]
    assert steps(result) == ["connect", "greeting", "ehlo", "auth", "mail", "rcpt", "data", "quit"]
    assert "implicit TLS" in step(result, "connect")["detail"]
    [received] = sink.received()
    assert received["tls"] is True and received["authenticated"] is True
    assert received["mail_from"].startswith("postmaster@")
    assert received["rcpt_tos"] == [received["mail_from"]]


async def test_refused_recipient_fails_at_rcpt_and_sends_no_data(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    start_sink: StartSink,
) -> None:
    sink = await start_sink("--refuse", TO)
    result = await relay_test(
        http, appliance.auth(), {"host": "127.0.0.1", "port": sink.port, "tls_mode": "none"}
    )
    assert result["ok"] is False and result["failed_step"] == "rcpt"
    assert steps(result) == ["connect", "greeting", "ehlo", "mail", "rcpt", "quit"]
    assert step(result, "rcpt")["reply"] == "550 5.1.1 no such user here"
    assert "550 5.1.1 no such user here" in result["message"]
    assert "relay to" in result["message"]
    assert sink.received() == []


async def test_untrusted_certificate_fails_at_starttls_unless_verify_tls_is_off(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    start_sink: StartSink,
    cert: TlsCertificate,
) -> None:
    sink = await start_sink(*tls_args(cert))
    inline = {"host": "127.0.0.1", "port": sink.port}
    refused = await relay_test(http, appliance.auth(), inline)
    assert refused["failed_step"] == "starttls"
    assert "certificate" in refused["message"] and "verify_tls" in refused["message"]
    assert sink.received() == []

    relaxed = await relay_test(http, appliance.auth(), {**inline, "verify_tls": False})
    assert relaxed["ok"] is True, relaxed["message"]
    assert "not checked" in step(relaxed, "starttls")["detail"]
    assert len(sink.received()) == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"relay_id": "rly_x", "host": "h.example"}, 400, "relay_id"),
        ({}, 400, "relay_id"),
        ({"relay_id": "rly_missing"}, 404, "relay_id"),
        ({"host": "h.example", "to": "not-an-address"}, 400, "to"),
        ({"host": "h.example", "from": "a@b@c"}, 400, "from"),
        ({"host": "h.example", "port": 0}, 400, "port"),
    ],
)
async def test_relay_test_refuses_a_bad_request(
    http: httpx.AsyncClient, appliance: RunningAppliance, body: Json, status: int, field: str
) -> None:
    r = await http.post(f"{API}/test", headers=appliance.auth(), json=body)
    assert r.status_code == status, r.text
    assert r.json()["errors"][0]["field"] == field


def test_relay_repr_hides_the_password_token() -> None:
    relay = Relay("rly_1", "r", "h", 587, "starttls", True, "u", "gAAAAtoken", None, 0.0, 0.0)
    assert "gAAAAtoken" not in repr(relay)
