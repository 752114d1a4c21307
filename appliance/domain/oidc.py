"""OpenID Connect login of the admin UI: the pure part (no I/O).

The flow (authorization code with PKCE, OpenID Connect Core 1.0 §3.1):

1. ``ProviderMetadata.parse`` reads the provider's discovery document
   (``<issuer>/.well-known/openid-configuration``);
2. ``start_authorization`` makes the URL the browser is sent to, with a fresh
   ``state``, ``nonce`` and PKCE ``code_verifier`` the caller keeps until the
   callback (``seal_pending`` / ``open_pending`` keep them in an encrypted,
   short-lived cookie);
3. ``callback_code`` checks the callback's ``state`` and turns a provider
   ``error=`` into an ``OidcError``; the code is exchanged for an ID token
   (``appliance.net.oidc``; ``id_token_from_response`` / ``token_error`` read
   the answer);
4. ``validate_id_token`` checks the token's signature against the provider's
   JWKS (RS256 or ES256 only, key chosen by ``kid``), then iss, aud, exp, iat
   and nonce, and returns the claims; ``role_for_groups`` maps the user's
   groups to a role.

Every failure is an ``OidcError`` whose message says what happened and whose
hint says what the operator (or user) can do about it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from appliance.domain.oidc_errors import (
    CALLBACK_PATH,
    OidcError,
    OidcFailure,
    authorization_refused,
    json_object,
    no_role_error,
    provider_error,
    redirect_uri_hint,
    token_error,
)
from appliance.domain.oidc_id_token import (
    ALLOWED_ALGORITHMS,
    DEFAULT_LEEWAY,
    IdTokenClaims,
    groups_of,
    key_ids,
    validate_id_token,
)
from appliance.domain.secret_box import SecretBox, SecretBoxError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CALLBACK_PATH",
    "DEFAULT_LEEWAY",
    "AuthorizationRequest",
    "IdTokenClaims",
    "OidcError",
    "OidcFailure",
    "PendingLogin",
    "ProviderMetadata",
    "authorization_refused",
    "callback_code",
    "code_challenge",
    "discovery_url",
    "groups_of",
    "id_token_from_response",
    "key_ids",
    "no_role_error",
    "open_pending",
    "provider_error",
    "redirect_uri_hint",
    "role_for_groups",
    "seal_pending",
    "start_authorization",
    "token_error",
    "validate_id_token",
]

DISCOVERY_PATH = "/.well-known/openid-configuration"
PENDING_MAX_AGE = 600.0  # seconds a started login may take before the callback


# ---------------------------------------------------------------- URLs


def discovery_url(issuer: str) -> str:
    check_url(issuer, "oidc_issuer")
    return issuer.rstrip("/") + DISCOVERY_PATH


def check_url(url: str, what: str) -> str:
    """``url`` if it is https (or http to a loopback host), else an ``OidcError``."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return url
    raise OidcError(
        f"{what} is {url!r}, not an https:// URL",
        "OpenID Connect needs https (plain http is accepted only for a loopback provider); "
        f"fix {what}",
        reason=OidcFailure.CONFIGURATION,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_endpoint_auth_methods: tuple[str, ...] = ("client_secret_basic",)

    @classmethod
    def parse(cls, document: Mapping[str, Any] | str | bytes, *, issuer: str) -> ProviderMetadata:
        """The metadata of a discovery document fetched for the configured ``issuer``."""
        where = discovery_url(issuer)
        doc = json_object(document)
        if doc is None:
            raise OidcError(
                f"the discovery document at {where} is not a JSON object",
                "check oidc_issuer: it must be the provider's issuer URL, the one "
                f"{DISCOVERY_PATH} is served under",
                reason=OidcFailure.DISCOVERY,
            )
        fields = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        missing = [f for f in fields if not isinstance(doc.get(f), str) or not doc.get(f)]
        if missing:
            raise OidcError(
                f"the discovery document at {where} lacks {', '.join(missing)}",
                "oidc_issuer must name an OpenID Connect provider (not a plain OAuth 2 server)",
                reason=OidcFailure.DISCOVERY,
            )
        if doc["issuer"].rstrip("/") != issuer.rstrip("/"):
            raise OidcError(
                f"the discovery document at {where} names issuer {doc['issuer']!r}, "
                f"but oidc_issuer is {issuer!r}",
                f"set oidc_issuer to {doc['issuer']} (the issuer its ID tokens carry)",
                reason=OidcFailure.DISCOVERY,
            )
        for name in fields[1:]:
            check_url(doc[name], f"{name} of the discovery document")
        methods = doc.get("token_endpoint_auth_methods_supported")
        auth = tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else ()
        return cls(
            doc["issuer"],
            doc["authorization_endpoint"],
            doc["token_endpoint"],
            doc["jwks_uri"],
            auth or ("client_secret_basic",),
        )


# ---------------------------------------------------------------- authorization


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep until the callback."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def code_challenge(code_verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start_authorization(
    meta: ProviderMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: str | Sequence[str],
) -> AuthorizationRequest:
    """A new login: the authorization URL with fresh state, nonce and PKCE verifier."""
    wanted = scopes.split() if isinstance(scopes, str) else list(scopes)
    scope = " ".join(["openid", *[s for s in dict.fromkeys(wanted) if s != "openid"]])
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43..128
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    parts = urlsplit(meta.authorization_endpoint)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return AuthorizationRequest(url, state, nonce, verifier)


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the callback needs from the start of the login."""

    state: str
    nonce: str
    code_verifier: str
    created_at: float
    return_to: str = ""


def seal_pending(
    box: SecretBox, request: AuthorizationRequest, *, now: float, return_to: str = ""
) -> str:
    """The pending login as an encrypted, authenticated string (a cookie value).

    ``return_to`` (where to go after the login) is kept only if it is a path on
    this site: an absolute or scheme-relative URL would make an open redirect."""
    if not return_to.startswith("/") or return_to.startswith("//") or "\\" in return_to:
        return_to = ""
    body = {
        "s": request.state,
        "n": request.nonce,
        "v": request.code_verifier,
        "t": now,
        "r": return_to,
    }
    return box.encrypt(json.dumps(body, separators=(",", ":")).encode())


def open_pending(
    box: SecretBox, sealed: str | None, *, now: float, max_age: float = PENDING_MAX_AGE
) -> PendingLogin:
    """The pending login a ``seal_pending`` string holds, if it is ours and recent."""
    again = "start the login again from the admin UI login page"
    if not sealed:
        raise OidcError(
            "this login was not started here (no pending-login cookie came with the callback)",
            f"{again}; if it repeats, check that ADMIN_URL is the URL the browser uses "
            "(the cookie is set for it) and that cookies are allowed",
            reason=OidcFailure.STATE,
        )
    try:
        body = json.loads(box.decrypt(sealed))
        pending = PendingLogin(
            str(body["s"]), str(body["n"]), str(body["v"]), float(body["t"]), str(body["r"])
        )
    except (SecretBoxError, ValueError, KeyError, TypeError):
        raise OidcError(
            "the pending-login cookie is damaged or was made with another secret key",
            again,
            reason=OidcFailure.STATE,
        ) from None
    if not -DEFAULT_LEEWAY <= now - pending.created_at <= max_age:  # nodes' clocks differ
        raise OidcError(
            f"the login took longer than {max_age:g} s between the redirect and the callback",
            again,
            reason=OidcFailure.STATE,
        )
    return pending


def callback_code(params: Mapping[str, str], *, expected_state: str, redirect_uri: str) -> str:
    """The authorization code of a callback, after its error and state are checked."""
    if params.get("error"):
        raise provider_error(
            params["error"], params.get("error_description", ""), redirect_uri=redirect_uri
        )
    state = params.get("state", "")
    if not state or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise OidcError(
            "the callback's state does not match the login started in this browser",
            "start the login again from the admin UI (a login started in another tab, "
            "or an old or forged callback link, ends here)",
            reason=OidcFailure.STATE,
        )
    code = params.get("code", "")
    if not code:
        raise OidcError(
            "the provider's callback carries no authorization code",
            "check that the client uses the authorization code flow (response_type=code)",
            reason=OidcFailure.PROVIDER,
        )
    return code


# ---------------------------------------------------------------- token endpoint


def id_token_from_response(body: bytes, *, token_url: str) -> str:
    """The ``id_token`` of a successful token response."""
    doc = json_object(body)
    token = doc.get("id_token") if doc is not None else None
    if not isinstance(token, str) or not token:
        raise OidcError(
            f"the token endpoint {token_url} returned no id_token",
            "the client must be an OpenID Connect client and oidc_scopes must include openid",
            reason=OidcFailure.TOKEN_ENDPOINT,
        )
    return token


# ---------------------------------------------------------------- ID token


# ---------------------------------------------------------------- roles


def role_for_groups(
    groups: Iterable[str], mapping: Mapping[str, str], default_role: str
) -> str | None:
    """The role of the first ``mapping`` entry whose group the user is in (so list the
    strongest first), else ``default_role``; None when that is empty (refuse the user)."""
    member = set(groups)
    for group, role in mapping.items():
        if group in member:
            return role
    return default_role or None
