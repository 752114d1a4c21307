"""The OpenID Connect provider over HTTP: discovery, JWKS, the token endpoint.

One ``OidcClient`` per process (the admin UI's, or the doctor's): it keeps the
discovery document and the JWKS for ``cache_ttl`` seconds, and fetches the JWKS
again (at most once per ``jwks_refetch_interval``) when a token names a ``kid``
it does not hold: providers rotate their keys. Every failure is an
``OidcError`` naming the URL that failed; the pure checks are in
``appliance.domain.oidc``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import trio

from appliance.config import Config
from appliance.domain.oidc import (
    DEFAULT_LEEWAY,
    AuthorizationRequest,
    IdTokenClaims,
    OidcError,
    OidcFailure,
    PendingLogin,
    ProviderMetadata,
    authorization_refused,
    callback_code,
    discovery_url,
    id_token_from_response,
    start_authorization,
    token_error,
    validate_id_token,
)
from appliance.domain.oidc_errors import json_object

USER_AGENT = "Postyard-OIDC/1"
MAX_DOCUMENT_BYTES = 1024 * 1024
EGRESS = (
    "this host (not only the browser) needs outbound HTTPS to the provider: check the "
    "firewall, proxy and DNS of the appliance; `postyard doctor` checks it"
)


class OidcClient:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str = "",
        *,
        timeout: float = 10.0,
        cache_ttl: float = 3600.0,
        jwks_refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._ttl = cache_ttl
        self._refetch_interval = jwks_refetch_interval
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._meta: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, dict[str, Any]] | None = None
        self._lock = trio.Lock()

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> OidcClient:
        return cls(config.oidc_issuer, config.oidc_client_id, config.oidc_client_secret, **kwargs)

    async def __aenter__(self) -> OidcClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                verify=True,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
        return self._http

    # ------------------------------------------------------------ documents

    async def metadata(self, *, refresh: bool = False) -> ProviderMetadata:
        """The provider's discovery document (cached for ``cache_ttl``)."""
        async with self._lock:
            if self._meta is not None and not refresh and self._fresh(self._meta[0]):
                return self._meta[1]
            url = discovery_url(self.issuer)
            body = await self._get(url, what="discovery document", reason=OidcFailure.DISCOVERY)
            meta = ProviderMetadata.parse(body, issuer=self.issuer)
            self._meta = (self._clock(), meta)
            return meta

    async def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """The provider's JSON Web Key Set (cached for ``cache_ttl``)."""
        meta = await self.metadata()
        async with self._lock:
            if self._jwks is not None and not refresh and self._fresh(self._jwks[0]):
                return self._jwks[1]
            recent = (
                self._jwks is not None and self._clock() - self._jwks[0] < self._refetch_interval
            )
            if refresh and recent and self._jwks is not None:
                return self._jwks[1]  # fetched a moment ago: a new kid will not be there yet
            body = await self._get(meta.jwks_uri, what="JWKS", reason=OidcFailure.JWKS_UNREACHABLE)
            doc = json_object(body)
            if doc is None or not isinstance(doc.get("keys"), list):
                raise OidcError(
                    f"JWKS at {meta.jwks_uri} is not a JSON object with a keys list",
                    "check jwks_uri in the provider's discovery document",
                    reason=OidcFailure.JWKS_UNREACHABLE,
                )
            self._jwks = (self._clock(), doc)
            return doc

    def _fresh(self, fetched_at: float) -> bool:
        return self._clock() - fetched_at < self._ttl

    async def _send(
        self, method: str, url: str, *, what: str, reason: OidcFailure, **kwargs: Any
    ) -> httpx.Response:
        try:
            return await self._client().request(method, url, **kwargs)
        except httpx.TimeoutException:
            problem = f"no answer within {self._timeout:g} s"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc or 'no detail'}"
        raise OidcError(f"{what} unreachable: {url} ({problem})", EGRESS, reason=reason)

    async def _get(self, url: str, *, what: str, reason: OidcFailure) -> bytes:
        response = await self._send("GET", url, what=what, reason=reason, follow_redirects=True)
        if response.status_code != 200:
            raise OidcError(
                f"{what} unreachable: {url} answered {response.status_code}",
                "check oidc_issuer and that the provider is up; " + EGRESS,
                reason=reason,
            )
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise OidcError(
                f"{what} at {url} is larger than {MAX_DOCUMENT_BYTES} bytes",
                "check oidc_issuer",
                reason=reason,
            )
        return response.content

    # ------------------------------------------------------------ the login

    async def start(self, redirect_uri: str, scopes: str | Sequence[str]) -> AuthorizationRequest:
        """A new login: where to send the browser (keep state, nonce and verifier)."""
        meta = await self.metadata()
        return start_authorization(
            meta, client_id=self.client_id, redirect_uri=redirect_uri, scopes=scopes
        )

    async def exchange_code(self, code: str, code_verifier: str, redirect_uri: str) -> str:
        """The ID token the token endpoint gives for an authorization code."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {}
        if self._secret and "client_secret_basic" in meta.token_endpoint_auth_methods:
            # RFC 6749 §2.3.1: both parts form-encoded before base64
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.client_id
            if self._secret:
                form["client_secret"] = self._secret
        url = meta.token_endpoint
        response = await self._send(
            "POST",
            url,
            what="token endpoint",
            reason=OidcFailure.TOKEN_ENDPOINT,
            data=form,
            headers=headers,
        )
        if response.status_code != 200:
            raise token_error(
                response.status_code, response.content, token_url=url, redirect_uri=redirect_uri
            )
        return id_token_from_response(response.content, token_url=url)

    async def validate(
        self,
        id_token: str,
        *,
        nonce: str,
        now: float | None = None,
        leeway: float = DEFAULT_LEEWAY,
        groups_claim: str = "groups",
    ) -> IdTokenClaims:
        """The ID token's claims, checked against the provider's keys; a token signed
        with a key the cached JWKS lacks makes it fetch the JWKS again, once."""
        meta = await self.metadata()
        when = time.time() if now is None else now
        for refresh in (False, True):
            keys = await self.jwks(refresh=refresh)
            try:
                return validate_id_token(
                    id_token,
                    keys,
                    issuer=meta.issuer,
                    client_id=self.client_id,
                    nonce=nonce,
                    now=when,
                    leeway=leeway,
                    groups_claim=groups_claim,
                )
            except OidcError as exc:
                if exc.reason is not OidcFailure.UNKNOWN_KID or refresh:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def complete(
        self,
        params: Mapping[str, str],
        pending: PendingLogin,
        *,
        redirect_uri: str,
        groups_claim: str = "groups",
        now: float | None = None,
    ) -> IdTokenClaims:
        """The callback, start to end: check it, exchange its code, validate the ID token."""
        code = callback_code(params, expected_state=pending.state, redirect_uri=redirect_uri)
        id_token = await self.exchange_code(code, pending.code_verifier, redirect_uri)
        return await self.validate(
            id_token, nonce=pending.nonce, now=now, groups_claim=groups_claim
        )

    async def check_redirect_uri(self, redirect_uri: str, scopes: str | Sequence[str]) -> None:
        """Ask the authorization endpoint for a login with ``redirect_uri`` (as a browser
        would, without following it) and raise when the provider refuses that URI."""
        request = await self.start(redirect_uri, scopes)
        response = await self._send(
            "GET",
            request.url,
            what="authorization endpoint",
            reason=OidcFailure.DISCOVERY,
            headers={"Accept": "text/html"},
        )
        refused = authorization_refused(
            response.status_code, response.text[:20000], redirect_uri=redirect_uri
        )
        if refused is not None:
            raise refused
