"""Errors of the OpenID Connect login, worded for the operator who has to fix them.

``OidcError.message`` says what happened, ``hint`` what to do; ``reason`` is the
kind of problem (the redirect URI, the JWKS, the provider's refusal, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

CALLBACK_PATH = "oidc/callback"


class OidcFailure(StrEnum):
    """What kind of problem an ``OidcError`` is (for tests, logs and the UI)."""

    CONFIGURATION = "configuration"
    DISCOVERY = "discovery"
    JWKS_UNREACHABLE = "jwks_unreachable"
    REDIRECT_URI = "invalid_redirect_uri"
    PROVIDER = "provider_error"
    TOKEN_ENDPOINT = "token_endpoint"
    STATE = "state"
    INVALID_TOKEN = "invalid_token"
    UNKNOWN_KID = "unknown_kid"


class OidcError(Exception):
    """An OpenID Connect login cannot go on: ``message`` says why, ``hint`` what to do."""

    def __init__(
        self, message: str, hint: str = "", *, reason: OidcFailure = OidcFailure.PROVIDER
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


def redirect_uri_hint(redirect_uri: str) -> str:
    return (
        f"register exactly {redirect_uri} as a redirect URI of this client with the provider, "
        "or set ADMIN_URL (POSTYARD_ADMIN_URL) to the URL browsers reach the admin UI at "
        f"(the redirect URI is ADMIN_URL + {CALLBACK_PATH!r})"
    )


def json_object(data: Mapping[str, Any] | str | bytes) -> dict[str, Any] | None:
    if isinstance(data, Mapping):
        return dict(data)
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


_PROVIDER_HINTS = {
    "access_denied": "the user cancelled, or is not allowed to use this client: ask the "
    "provider's administrator to assign the user to it",
    "invalid_scope": "check oidc_scopes (POSTYARD_OIDC_SCOPES) and remove the scopes the "
    "provider does not offer",
    "invalid_client": "check oidc_client_id and oidc_client_secret against the client "
    "registered with the provider",
    "unauthorized_client": "enable the authorization code flow for this client at the provider",
    "unsupported_response_type": "enable the authorization code flow for this client at the "
    "provider",
    "unsupported_grant_type": "enable the authorization code flow for this client at the provider",
    "invalid_grant": "start the login again (codes are single-use and expire within minutes); "
    "if it repeats, compare the redirect URI registered with the provider and the clocks",
    "login_required": "log in at the provider, then start the login again",
    "consent_required": "grant the consent at the provider, then start the login again",
    "interaction_required": "log in at the provider, then start the login again",
    "server_error": "try again later; the provider's logs say more",
    "temporarily_unavailable": "try again later; the provider's logs say more",
}


def provider_error(
    error: str, description: str = "", *, redirect_uri: str, where: str = "provider"
) -> OidcError:
    """An OAuth ``error`` (callback or token endpoint) as a message an operator can act on."""
    said = f"{error}: {description}" if description else error
    mentions = f"{error} {description}".lower().replace(" ", "_")
    if "redirect_uri" in mentions or "redirect_url" in mentions:
        return OidcError(
            f"invalid redirect_uri: the {where} refused {redirect_uri} ({said})",
            redirect_uri_hint(redirect_uri),
            reason=OidcFailure.REDIRECT_URI,
        )
    hint = _PROVIDER_HINTS.get(error, "the provider's logs say more")
    reason = OidcFailure.TOKEN_ENDPOINT if where != "provider" else OidcFailure.PROVIDER
    return OidcError(f"the {where} refused the login ({said})", hint, reason=reason)


def authorization_refused(status: int, body: str, *, redirect_uri: str) -> OidcError | None:
    """The provider's answer to an authorization request, as an error if it refuses it.

    Providers show a refused redirect URI on their own page (they must not redirect
    to it); a 4xx answer that talks about the redirect URI is that page."""
    text = body.lower().replace(" ", "_")
    if 400 <= status < 500 and ("redirect_uri" in text or "redirect_url" in text):
        return OidcError(
            f"invalid redirect_uri: the provider answers {status} to a login with {redirect_uri}",
            redirect_uri_hint(redirect_uri),
            reason=OidcFailure.REDIRECT_URI,
        )
    if status >= 400:
        return OidcError(
            f"the provider's authorization endpoint answers {status}",
            "check oidc_client_id and oidc_scopes; the provider's logs say more",
            reason=OidcFailure.PROVIDER,
        )
    return None


def token_error(status: int, body: bytes, *, token_url: str, redirect_uri: str) -> OidcError:
    """A token endpoint's refusal (RFC 6749 §5.2 ``{"error": …}``, or anything else)."""
    doc = json_object(body)
    if doc is not None and isinstance(doc.get("error"), str):
        description = doc.get("error_description")
        return provider_error(
            doc["error"],
            description if isinstance(description, str) else "",
            redirect_uri=redirect_uri,
            where=f"token endpoint {token_url}",
        )
    snippet = body[:200].decode("utf-8", "replace").strip()
    return OidcError(
        f"the token endpoint {token_url} answered {status}" + (f": {snippet}" if snippet else ""),
        "the provider's logs say more; check oidc_client_id and oidc_client_secret",
        reason=OidcFailure.TOKEN_ENDPOINT,
    )


def no_role_error(subject: str, groups: Sequence[str]) -> OidcError:
    """The refusal of a user none of whose groups maps to a role."""
    shown = ", ".join(groups) if groups else "none"
    return OidcError(
        f"{subject} is in no group that oidc_role_map gives a role (groups: {shown})",
        "add one of the groups to oidc_role_map (group=role), or set oidc_default_role",
        reason=OidcFailure.CONFIGURATION,
    )
