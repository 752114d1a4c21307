"""Single sign-on in the browser against the test OpenID provider on loopback.

A user of group ``readers`` (mapped to the viewer role) signs in through the
provider's own login form and lands in the admin UI as a viewer: the API keys
page offers no create form, and a key creation sent anyway is refused by the
server. A provider whose JWKS does not answer, or that refuses the redirect
URI, gives a sign-in page that says what to fix.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import BrowserThread, Ui, open_ui
from tests.support.oidc_provider import OidcProvider, ProviderUser, open_oidc_provider

READER = ProviderUser("rita", "rita-password", "rita@example.test", ("readers",), "Rita Reader")
OPS = ProviderUser("otto", "otto-password", "otto@example.test", ("mail-ops",), "Otto Ops")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def sso(
    tmp_path: Path, sqlite_url: str, browser_thread: BrowserThread, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Ui, OidcProvider]]:
    port = _free_port()
    redirect_uri = f"http://127.0.0.1:{port}/admin/oidc/callback"
    async with open_oidc_provider([READER, OPS], redirect_uris=[redirect_uri]) as idp:
        async with open_ui(
            tmp_path,
            sqlite_url,
            browser_thread,
            request.node.name.removeprefix("test_"),
            http_listen=f"127.0.0.1:{port}",
            oidc_issuer=idp.issuer,
            oidc_client_id=idp.client_id,
            oidc_client_secret=idp.client_secret,
            oidc_role_map="readers=viewer,mail-ops=admin",
            oidc_button_label="Sign in with Example ID",
        ) as ui:
            yield ui, idp


def _sso_login(page: Any, user: ProviderUser) -> None:
    page.goto("/admin/login")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()


async def test_a_viewer_from_sso_cannot_create_keys(sso: tuple[Ui, OidcProvider]) -> None:
    ui, _idp = sso

    def sign_in(page: Any) -> None:
        _sso_login(page, READER)
        page.wait_for_url("**/admin/")
        assert "Rita Reader" in page.locator(".user-menu summary").inner_text()
        assert "(viewer)" in page.locator(".user-menu summary").inner_text()

    await ui.do(sign_in)
    await ui.screenshot("viewer-dashboard")

    def keys_page(page: Any) -> dict[str, Any]:
        page.goto("/admin/api-keys")
        assert page.get_by_role("heading", name="API keys").is_visible()
        assert page.locator("#create-key").count() == 0  # the UI hides what the role lacks
        assert page.get_by_role("button", name="Revoke").count() == 0
        # ... and the server refuses it when sent anyway, from this very session.
        answer: dict[str, Any] = page.evaluate(
            """async () => {
                const csrf = document.querySelector('meta[name=csrf-token]').content;
                const r = await fetch('/v3/api_keys', {method: 'POST', headers:
                    {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                    body: JSON.stringify({name: 'sneaky'})});
                return {status: r.status, body: await r.json()};
            }"""
        )
        return answer

    refused = await ui.do(keys_page)
    await ui.screenshot("viewer-keys")
    assert refused["status"] == 403
    assert refused["body"]["errors"][0]["message"] == "Missing required scope: api_keys.create"
    keys = await ui.app.ctx.store.api_keys.for_tenant(ui.app.init.tenant_id)
    assert "sneaky" not in {k.name for k in keys}

    def forbidden_page(page: Any) -> None:
        page.goto("/admin/users")
        assert page.get_by_text("does not have the permission").is_visible()

    await ui.do(forbidden_page)
    user = await ui.app.ctx.store.users.get_by_email(READER.email)
    assert user is not None and user.role == "viewer" and user.oidc_subject == READER.subject
    assert not ui.console_errors, ui.console_errors


async def test_sso_errors_say_what_to_fix(sso: tuple[Ui, OidcProvider]) -> None:
    ui, idp = sso
    idp.serve_jwks = False

    def jwks_down(page: Any) -> str:
        _sso_login(page, OPS)
        error = page.locator("#login-error")
        error.wait_for()
        return str(error.inner_text())

    text = await ui.do(jwks_down)
    await ui.screenshot("jwks-unreachable")
    assert "JWKS" in text and idp.issuer in text

    idp.serve_jwks = True
    idp.register_redirect_uri("https://elsewhere.example/callback", only=True)

    def bad_redirect(page: Any) -> str:
        page.goto("/admin/login")
        page.get_by_role("link", name="Sign in with Example ID").click()
        return str(page.content())

    provider_page = await ui.do(bad_redirect)
    await ui.screenshot("invalid-redirect-uri")
    assert "invalid redirect_uri" in provider_page
    assert await ui.app.ctx.store.users.get_by_email(OPS.email) is None
