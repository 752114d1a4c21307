"""Signing in to the admin UI over real HTTP: passwords, lock-out, TOTP, CSRF, sessions.

httpx plays the browser (cookies, form posts); pyotp plays the authenticator app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.support.admin_session import sign_in, signed_in
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
async def app(tmp_path: Path, sqlite_url: str) -> AsyncIterator[RunningAppliance]:
    config = appliance_config(
        tmp_path / "data", sqlite_url, admin_login_max_failures=3, admin_login_rate_limit=12
    )
    async with run_appliance(config) as running:
        yield running


def _client(app: RunningAppliance) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=app.base_url, timeout=15)


async def test_wrong_passwords_lock_the_account_and_an_admin_unlocks_it(
    app: RunningAppliance,
) -> None:
    email, password = app.init.admin_email, app.init.admin_password
    store = app.ctx.store
    other = await store.users.create(email="ops@example.test", role="admin", password_hash=None)
    async with signed_in(app) as owner:
        r = await owner.patch(
            f"/api/admin/users/{other.id}", json={"password": "correct horse battery"}
        )
        assert r.status_code == 200, r.text
    async with _client(app) as browser:
        for _ in range(2):
            page = await sign_in(browser, "ops@example.test", "wrong password")
            assert page.status_code == 401
            assert "Wrong email or password." in page.text
        page = await sign_in(browser, "ops@example.test", "wrong password")
        assert page.status_code == 401
        assert "This account is locked after 3 failed sign-ins" in page.text
        page = await sign_in(browser, "ops@example.test", "correct horse battery")
        assert page.status_code == 403 and "locked" in page.text
        unknown = await sign_in(browser, "nobody@example.test", "whatever")
        assert unknown.status_code == 401 and "Wrong email or password." in unknown.text
    async with signed_in(app, email, password) as owner:
        r = await owner.patch(f"/api/admin/users/{other.id}", json={"unlock": True})
        assert r.status_code == 200 and r.json()["locked_until"] is None
    async with _client(app) as browser:
        page = await sign_in(browser, "ops@example.test", "correct horse battery")
        assert page.status_code == 200 and page.url.path == "/admin/"


async def test_sign_in_attempts_per_address_are_rate_limited(app: RunningAppliance) -> None:
    async with _client(app) as browser:
        answers = [
            (await sign_in(browser, "x@example.test", "nope")).status_code for _ in range(13)
        ]
    assert answers[:12] == [401] * 12
    assert answers[12] == 429


async def test_the_sign_in_form_needs_its_csrf_cookie_and_next_stays_on_this_site(
    app: RunningAppliance,
) -> None:
    async with _client(app) as browser:
        r = await browser.post(
            "/admin/login",
            data={"email": app.init.admin_email, "password": app.init.admin_password},
        )
        assert r.status_code == 400 and "form expired" in r.text
        form = await browser.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        r = await browser.post(
            "/admin/login",
            data={
                "email": app.init.admin_email,
                "password": app.init.admin_password,
                "csrf_token": token.group(1),
                "next": "//evil.example/admin",
            },
        )
        assert r.status_code == 302 and r.headers["location"] == "/admin/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_api_calls_from_a_session_need_the_csrf_token(app: RunningAppliance) -> None:
    async with signed_in(app) as owner:
        token = owner.headers.pop("X-CSRF-Token")
        r = await owner.post("/v3/api_keys", json={"name": "forged"})
        assert r.status_code == 403
        assert (
            r.json()["errors"][0]["message"] == "CSRF token missing or wrong for this admin session"
        )
        r = await owner.get("/v3/scopes")  # reads need no token
        assert r.status_code == 200 and "users.create" in r.json()["scopes"]
        r = await owner.post("/v3/api_keys", json={"name": "real"}, headers={"X-CSRF-Token": token})
        assert r.status_code == 201, r.text
        # A key made by a person carries API scopes only, never the operator permissions.
        assert not any(s.startswith(("users.", "roles.", "tenants.")) for s in r.json()["scopes"])


async def test_totp_is_asked_after_the_password_once_enabled(app: RunningAppliance) -> None:
    secret = pyotp.random_base32()
    async with signed_in(app) as owner:
        r = await owner.post("/api/admin/account/totp", json={"secret": secret, "code": "000000"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "code"
        code = pyotp.TOTP(secret).now()
        r = await owner.post("/api/admin/account/totp", json={"secret": secret, "code": code})
        assert r.status_code == 200, r.text
    user = await app.ctx.store.users.get_by_email(app.init.admin_email)
    assert user is not None and user.totp_secret and secret not in user.totp_secret
    async with _client(app) as browser:
        page = await sign_in(browser, app.init.admin_email, app.init.admin_password)
        assert page.url.path == "/admin/login/totp"
        assert (await browser.get("/admin/")).status_code == 302  # not signed in yet
        pending = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert pending
        wrong = await browser.post(
            "/admin/login/totp", data={"code": "123456", "csrf_token": pending.group(1)}
        )
        assert wrong.status_code == 401 and "Wrong code" in wrong.text
        right = await browser.post(
            "/admin/login/totp",
            data={"code": pyotp.TOTP(secret).now(), "csrf_token": pending.group(1)},
            follow_redirects=True,
        )
        assert right.status_code == 200 and right.url.path == "/admin/"


async def test_sign_out_ends_the_session_and_a_disabled_user_is_out_at_once(
    app: RunningAppliance,
) -> None:
    async with signed_in(app) as owner:
        page = await owner.get("/admin/account")
        token = CSRF_META.search(page.text)
        assert token
        r = await owner.post("/admin/logout", data={"csrf_token": token.group(1)})
        assert r.status_code == 302
        r = await owner.get("/admin/messages")
        assert r.status_code == 302 and r.headers["location"].startswith("/admin/login")
        r = await owner.get("/v3/scopes")
        assert r.status_code == 401
    store = app.ctx.store
    async with signed_in(app) as owner:
        r = await owner.post(
            "/api/admin/users",
            json={"email": "dev@example.test", "role": "developer", "password": "developer pass 1"},
        )
        assert r.status_code == 201, r.text
        dev_id = r.json()["id"]
        async with signed_in(app, "dev@example.test", "developer pass 1") as dev:
            assert (await dev.get("/v3/scopes")).status_code == 200
            r = await owner.patch(f"/api/admin/users/{dev_id}", json={"disabled": True})
            assert r.status_code == 200
            assert (await dev.get("/v3/scopes")).status_code == 401
    assert (await store.users.get(dev_id)) is not None


async def test_roles_cannot_grant_what_their_editor_lacks(app: RunningAppliance) -> None:
    async with signed_in(app) as owner:
        r = await owner.post(
            "/api/admin/users",
            json={"email": "adm@example.test", "role": "admin", "password": "admin password 1"},
        )
        assert r.status_code == 201, r.text
        r = await owner.delete("/api/admin/roles/viewer")
        assert r.status_code == 400 and "built-in" in r.text
        r = await owner.post(
            "/api/admin/roles",
            json={"name": "auditor", "permissions": ["messages.read", "stats.read"]},
        )
        assert r.status_code == 201, r.text
        r = await owner.post("/api/admin/roles", json={"name": "x", "permissions": ["nope.read"]})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] in ("name", "permissions")
    async with signed_in(app, "adm@example.test", "admin password 1") as admin:
        r = await admin.post(
            "/api/admin/users",
            json={"email": "boss@example.test", "role": "owner", "password": "owner password 1"},
        )
        assert r.status_code == 403 and "ask an owner" in r.text
        r = await admin.post(
            "/api/admin/users",
            json={"email": "aud@example.test", "role": "auditor"},
        )
        assert r.status_code == 201 and len(r.json()["password"]) >= 12
        me = (await admin.get("/api/admin/users")).json()["result"]
        my_id = next(u["id"] for u in me if u["email"] == "adm@example.test")
        r = await admin.patch(f"/api/admin/users/{my_id}", json={"role": "owner"})
        assert r.status_code == 403
        r = await admin.patch("/api/admin/roles/auditor", json={"permissions": ["roles.update"]})
        assert r.status_code == 403  # admin holds no roles.update
    async with signed_in(app) as owner:
        r = await owner.delete("/api/admin/roles/auditor")
        assert r.status_code == 409 and "still have role" in r.text


async def test_the_event_stream_takes_the_session_only_from_the_ui_origin(
    app: RunningAppliance,
) -> None:
    async with signed_in(app) as owner:
        cookie = "; ".join(f"{c.name}={c.value}" for c in owner.cookies.jar)
    url = app.base_url.replace("http://", "ws://") + "/v3/events/stream"
    origin = app.base_url
    with trio.fail_after(10):
        async with open_websocket_url(
            url, extra_headers=[("Cookie", cookie), ("Origin", origin)]
        ) as ws:
            assert not ws.closed
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(
                url, extra_headers=[("Cookie", cookie), ("Origin", "http://evil.example")]
            ):
                pass
    assert refused.value.status_code == 403


async def test_admin_pages_forbid_framing_inline_scripts_and_caching(
    app: RunningAppliance,
) -> None:
    async with _client(app) as browser:
        r = await browser.get("/admin/login")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert "<script>" not in r.text  # nothing inline for the policy to block
