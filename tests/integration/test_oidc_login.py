"""OpenID Connect login against a real provider on loopback, as a browser would drive it.

discovery -> authorization URL -> the provider's login form (GET, then POST the
username and password) -> 302 to the redirect URI with code and state ->
token exchange (client secret, PKCE verifier) -> ID token validated with the JWKS.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import trio

from appliance.domain.oidc import (
    AuthorizationRequest,
    IdTokenClaims,
    OidcError,
    OidcFailure,
    PendingLogin,
    role_for_groups,
)
from appliance.net.oidc import OidcClient
from tests.support.oidc_provider import OidcProvider, ProviderUser, open_oidc_provider

REDIRECT = "http://127.0.0.1:8080/admin/oidc/callback"
ANN = ProviderUser("ann", "correct horse", "ann@example.test", ("ops", "everyone"), "Ann Op")
SCOPES = "openid email profile groups"


@pytest.fixture
async def idp() -> AsyncIterator[OidcProvider]:
    async with open_oidc_provider([ANN], redirect_uris=[REDIRECT]) as provider:
        yield provider


@pytest.fixture
async def client(idp: OidcProvider) -> AsyncIterator[OidcClient]:
    async with OidcClient(idp.issuer, idp.client_id, idp.client_secret, timeout=3) as c:
        yield c


def _pending(req: AuthorizationRequest) -> PendingLogin:
    return PendingLogin(req.state, req.nonce, req.code_verifier, 0.0)


async def _log_in(
    req: AuthorizationRequest, *, password: str = ANN.password, button: str = "login"
) -> httpx.Response:
    """What the browser does at the provider: load the form, fill it in, submit it."""
    async with httpx.AsyncClient(timeout=5, follow_redirects=False) as browser:
        form_page = await browser.get(req.url)
        assert form_page.status_code == 200, form_page.text
        fields = dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', form_page.text))
        assert 'name="username"' in form_page.text and 'type="password"' in form_page.text
        action = re.search(r'<form method="post" action="([^"]+)"', form_page.text)
        assert action is not None
        fields.update(username=ANN.username, password=password, **{button: "1"})
        return await browser.post(str(form_page.url.join(action.group(1))), data=fields)


def _callback(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def _full_login(client: OidcClient) -> IdTokenClaims:
    req = await client.start(REDIRECT, SCOPES)
    params = _callback(await _log_in(req))
    return await client.complete(params, _pending(req), redirect_uri=REDIRECT)


async def test_login_through_the_provider_gives_the_users_claims_and_role(
    client: OidcClient, idp: OidcProvider
) -> None:
    req = await client.start(REDIRECT, SCOPES)
    params = _callback(await _log_in(req))
    assert params["state"] == req.state and params["code"]
    claims = await client.complete(params, _pending(req), redirect_uri=REDIRECT)
    assert claims.subject == ANN.subject
    assert (claims.email, claims.name, claims.groups) == (ANN.email, "Ann Op", ANN.groups)
    assert claims.email_verified is True
    assert role_for_groups(claims.groups, {"admins": "owner", "ops": "admin"}, "") == "admin"
    # The secret went by HTTP Basic (the provider advertises it), the verifier with it.
    (token_request,) = idp.token_requests
    assert "client_secret" not in token_request
    assert token_request["code_verifier"] == req.code_verifier


async def test_a_wrong_password_shows_the_form_again_and_no_code(client: OidcClient) -> None:
    req = await client.start(REDIRECT, SCOPES)
    response = await _log_in(req, password="wrong")
    assert response.status_code == 401 and "invalid username or password" in response.text


async def test_a_cancelled_login_comes_back_as_access_denied(client: OidcClient) -> None:
    req = await client.start(REDIRECT, SCOPES)
    params = _callback(await _log_in(req, button="cancel"))
    with pytest.raises(OidcError) as info:
        await client.complete(params, _pending(req), redirect_uri=REDIRECT)
    assert info.value.reason is OidcFailure.PROVIDER
    assert "access_denied" in info.value.message


async def test_a_code_used_twice_is_refused_as_invalid_grant(client: OidcClient) -> None:
    req = await client.start(REDIRECT, SCOPES)
    params = _callback(await _log_in(req))
    await client.complete(params, _pending(req), redirect_uri=REDIRECT)
    with pytest.raises(OidcError) as info:
        await client.complete(params, _pending(req), redirect_uri=REDIRECT)
    err = info.value
    assert err.reason is OidcFailure.TOKEN_ENDPOINT
    assert "invalid_grant" in err.message and "/token" in err.message
    assert "start the login again" in err.hint


async def test_a_wrong_pkce_verifier_or_secret_is_refused(
    client: OidcClient, idp: OidcProvider
) -> None:
    req = await client.start(REDIRECT, SCOPES)
    params = _callback(await _log_in(req))
    wrong = PendingLogin(req.state, req.nonce, "x" * 64, 0.0)
    with pytest.raises(OidcError, match="code_verifier does not match"):
        await client.complete(params, wrong, redirect_uri=REDIRECT)

    async with OidcClient(idp.issuer, idp.client_id, "not-the-secret") as bad:
        req = await bad.start(REDIRECT, SCOPES)
        params = _callback(await _log_in(req))
        with pytest.raises(OidcError) as info:
            await bad.complete(params, _pending(req), redirect_uri=REDIRECT)
    assert "invalid_client" in info.value.message
    assert "oidc_client_secret" in info.value.hint


async def test_jwks_unreachable_names_the_url_and_egress(
    client: OidcClient, idp: OidcProvider
) -> None:
    idp.serve_jwks = False
    with pytest.raises(OidcError) as info:
        await _full_login(client)
    err = info.value
    assert err.reason is OidcFailure.JWKS_UNREACHABLE
    assert err.message == f"JWKS unreachable: {idp.url}/jwks answered 503"
    assert "outbound HTTPS" in err.hint

    # A JWKS URL nothing listens on (blocked egress looks like this, or a timeout).
    closed = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = closed.socket.getsockname()[1]
    await closed.aclose()
    idp.serve_jwks = True
    idp.jwks_uri_override = f"http://127.0.0.1:{port}/certs"
    async with OidcClient(idp.issuer, idp.client_id, idp.client_secret, timeout=3) as fresh:
        with pytest.raises(OidcError) as info:
            await _full_login(fresh)
    err = info.value
    assert err.reason is OidcFailure.JWKS_UNREACHABLE
    assert f"JWKS unreachable: http://127.0.0.1:{port}/certs (ConnectError" in err.message
    assert "this host (not only the browser) needs outbound HTTPS" in err.hint


async def test_an_unregistered_redirect_uri_is_reported_as_invalid_redirect_uri(
    client: OidcClient, idp: OidcProvider
) -> None:
    idp.register_redirect_uri("https://mail.example.test/admin/oidc/callback", only=True)
    req = await client.start(REDIRECT, SCOPES)
    async with httpx.AsyncClient(timeout=5) as browser:
        page = await browser.get(req.url)
    assert page.status_code == 400 and "invalid redirect_uri" in page.text  # what users see

    with pytest.raises(OidcError) as info:
        await client.check_redirect_uri(REDIRECT, SCOPES)
    err = info.value
    assert err.reason is OidcFailure.REDIRECT_URI
    assert err.message.startswith("invalid redirect_uri")
    assert f"register exactly {REDIRECT}" in err.hint and "ADMIN_URL" in err.hint

    idp.register_redirect_uri(REDIRECT)
    await client.check_redirect_uri(REDIRECT, SCOPES)  # registered now: no error


async def test_a_rotated_key_is_fetched_once_and_the_login_works(
    client: OidcClient, idp: OidcProvider
) -> None:
    await _full_login(client)  # caches the JWKS with the first key
    old = idp.kid
    client._refetch_interval = 0  # the cached JWKS is not "a moment ago" for this test
    assert idp.rotate_key() != old
    claims = await _full_login(client)
    assert claims.subject == ANN.subject
    assert [k["kid"] for k in (await client.jwks())["keys"]] == [idp.kid]


async def test_a_token_of_another_kid_than_the_jwks_holds_is_refused(
    client: OidcClient, idp: OidcProvider
) -> None:
    await client.jwks()
    served = idp.jwks()
    idp.rotate_key()
    idp.jwks = lambda: served  # type: ignore[method-assign]  # JWKS never gets the new key
    client._refetch_interval = 0
    with pytest.raises(OidcError) as info:
        await _full_login(client)
    assert info.value.reason is OidcFailure.UNKNOWN_KID and idp.kid in info.value.message


async def test_discovery_of_another_issuer_or_of_nothing_is_explained(idp: OidcProvider) -> None:
    idp.issuer_override = "https://id.example.test"
    async with OidcClient(idp.url, idp.client_id, idp.client_secret) as c:
        with pytest.raises(OidcError) as info:
            await c.metadata()
    assert "names issuer 'https://id.example.test'" in info.value.message
    assert info.value.reason is OidcFailure.DISCOVERY

    async with OidcClient(idp.url + "/realms/none", idp.client_id) as c:
        with pytest.raises(OidcError) as info:
            await c.metadata()
    assert "/realms/none/.well-known/openid-configuration answered 404" in info.value.message


async def test_an_expired_id_token_from_the_provider_is_refused(
    client: OidcClient, idp: OidcProvider
) -> None:
    idp.token_lifetime = -120
    with pytest.raises(OidcError) as info:
        await _full_login(client)
    assert "expired" in info.value.message
