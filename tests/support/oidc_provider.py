"""A small real OpenID Connect provider for tests: quart-trio on hypercorn, on 127.0.0.1.

It serves discovery, an HTML login form at ``/authorize`` (username, password,
"Sign in" and "Cancel" buttons, so Playwright can drive it), ``/token`` (client
secret by Basic or form, single-use codes, PKCE S256, redirect URI checked) and
``/jwks``. ID tokens are RS256 with ``kid``. Tests can stop serving the JWKS,
advertise a JWKS URL that does not answer, register other redirect URIs, rotate
the signing key and add or override ID token claims.

    async with open_oidc_provider([ProviderUser("ann", "pw", "ann@example.test", ("ops",))],
                                  redirect_uris=["http://127.0.0.1:8080/admin/oidc/callback"]
                                  ) as idp:
        idp.issuer, idp.client_id, idp.client_secret
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote, urlencode

import jwt
import trio
from cryptography.hazmat.primitives.asymmetric import rsa
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio


@dataclass(frozen=True)
class ProviderUser:
    username: str
    password: str
    email: str
    groups: tuple[str, ...] = ()
    name: str = ""

    @property
    def subject(self) -> str:
        return "sub-" + hashlib.sha256(self.username.encode()).hexdigest()[:16]


@dataclass
class _Code:
    user: ProviderUser
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires_at: float


@dataclass
class OidcProvider:
    users: dict[str, ProviderUser]
    redirect_uris: set[str]
    client_id: str = "postyard-admin"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = 0
    serve_jwks: bool = True  # False: /jwks answers 503
    jwks_uri_override: str | None = None  # advertised in discovery instead of /jwks
    issuer_override: str | None = None  # the issuer discovery and tokens name
    extra_claims: dict[str, Any] = field(default_factory=dict)  # merged into ID tokens
    token_lifetime: float = 300.0
    codes: dict[str, _Code] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: int = 0
    _keys: list[tuple[str, rsa.RSAPrivateKey]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self._keys:
            self.rotate_key()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.issuer_override or self.url

    @property
    def kid(self) -> str:
        return self._keys[-1][0]

    def rotate_key(self) -> str:
        """A new signing key (and kid); the JWKS serves it from now on, alone."""
        kid = "k" + secrets.token_hex(4)
        self._keys = [(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))]
        return kid

    def register_redirect_uri(self, uri: str, *, only: bool = False) -> None:
        if only:
            self.redirect_uris.clear()
        self.redirect_uris.add(uri)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def id_token(self, user: ProviderUser, *, nonce: str | None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": user.subject,
            "email": user.email,
            "email_verified": True,
            "name": user.name or user.username,
            "preferred_username": user.username,
            "groups": list(user.groups),
            "iat": now,
            "exp": now + int(self.token_lifetime),
            **({"nonce": nonce} if nonce is not None else {}),
            **self.extra_claims,
            **overrides,
        }
        kid, key = self._keys[-1]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    # ------------------------------------------------------------ the app

    def app(self) -> QuartTrio:
        app = QuartTrio("oidc-test-provider")
        app.add_url_rule("/.well-known/openid-configuration", view_func=self._discovery)
        app.add_url_rule("/authorize", view_func=self._authorize, methods=["GET", "POST"])
        app.add_url_rule("/token", view_func=self._token, methods=["POST"])
        app.add_url_rule("/jwks", view_func=self._jwks)
        return app

    async def _discovery(self) -> Response:
        return _json(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": self.jwks_uri_override or f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["openid", "email", "profile", "groups"],
            }
        )

    async def _jwks(self) -> Response:
        if not self.serve_jwks:
            return Response("JWKS switched off by the test", status=503)
        return _json(self.jwks())

    async def _authorize(self) -> Response:
        self.authorize_requests += 1
        params = dict(request.args) if request.method == "GET" else dict(await request.form)
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id != self.client_id:
            return _page("Error", f"<p>invalid client_id {html.escape(client_id)}</p>", 400)
        if redirect_uri not in self.redirect_uris:
            return _page(
                "Error",
                "<h1>invalid redirect_uri</h1>"
                f"<p>{html.escape(redirect_uri)} is not registered for this client.</p>",
                400,
            )
        state = params.get("state", "")
        if params.get("response_type") != "code":
            return _back(redirect_uri, error="unsupported_response_type", state=state)
        if "openid" not in params.get("scope", "").split():
            return _back(redirect_uri, error="invalid_scope", state=state)
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return _back(
                redirect_uri,
                error="invalid_request",
                error_description="PKCE with S256 is required",
                state=state,
            )
        if request.method == "GET":
            return _login_form(params, error="")
        if "cancel" in params:
            return _back(
                redirect_uri,
                error="access_denied",
                error_description="The user cancelled the login",
                state=state,
            )
        user = self.users.get(params.get("username", ""))
        if user is None or not secrets.compare_digest(user.password, params.get("password", "")):
            return _login_form(params, error="invalid username or password")
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            user,
            client_id,
            redirect_uri,
            params["code_challenge"],
            params.get("nonce"),
            time.time() + 60,
        )
        return _back(redirect_uri, code=code, state=state)

    async def _token(self) -> Response:
        form = dict(await request.form)
        self.token_requests.append(form)
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            pair = base64.b64decode(auth[6:]).decode()
            client_id, _, secret = (unquote(p) for p in pair.partition(":"))
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return _json({"error": "invalid_client", "error_description": "bad secret"}, 401)
        if form.get("grant_type") != "authorization_code":
            return _json({"error": "unsupported_grant_type"}, 400)
        code = self.codes.pop(form.get("code", ""), None)
        if code is None or code.expires_at < time.time() or code.client_id != client_id:
            return _token_refused("the code is unknown, used or expired")
        if form.get("redirect_uri") != code.redirect_uri:
            return _token_refused("redirect_uri does not match the authorization request")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.challenge:
            return _token_refused("code_verifier does not match the code_challenge")
        return _json(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(code.user, nonce=code.nonce),
            }
        )


def _json(body: object, status: int = 200) -> Response:
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=_NO_STORE
    )


_NO_STORE = {"Cache-Control": "no-store"}


def _token_refused(description: str) -> Response:
    return _json({"error": "invalid_grant", "error_description": description}, 400)


def _back(redirect_uri: str, **params: str) -> Response:
    sep = "&" if "?" in redirect_uri else "?"
    return Response("", status=302, headers={"Location": redirect_uri + sep + urlencode(params)})


def _page(title: str, body: str, status: int = 200) -> Response:
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>{body}</body></html>"
    )
    return Response(text, status=status, content_type="text/html; charset=utf-8")


_CARRIED = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)


def _login_form(params: dict[str, str], *, error: str) -> Response:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(params.get(k, ""))}">'
        for k in _CARRIED
    )
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        "<h1>Test provider login</h1>"
        f"{message}"
        '<form method="post" action="/authorize">'
        f"{hidden}"
        '<label>Username <input name="username" id="username" autocomplete="username"></label>'
        '<label>Password <input name="password" id="password" type="password" '
        'autocomplete="current-password"></label>'
        '<button type="submit" name="login" value="1">Sign in</button>'
        '<button type="submit" name="cancel" value="1" formnovalidate>Cancel</button>'
        "</form>"
    )
    return _page("Sign in", body, 401 if error else 200)


@asynccontextmanager
async def open_oidc_provider(
    users: Iterable[ProviderUser],
    *,
    redirect_uris: Iterable[str] = (),
    client_id: str = "postyard-admin",
) -> AsyncIterator[OidcProvider]:
    """The provider, serving on a free loopback port until the block ends."""
    provider = OidcProvider({u.username: u for u in users}, set(redirect_uris), client_id)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, provider.app(), config, shutdown_trigger=stop.wait)
        )
        provider.port = int(binds[0].rsplit(":", 1)[1])
        try:
            yield provider
        finally:
            stop.set()
