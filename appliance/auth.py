"""API key authentication, shared by the HTTP API and SMTP submission.

Verified keys are cached for a few seconds (``api_key_cache_ttl``): a
revoked key stops working within that delay on every node, and the hot path
(``mail/send`` at hundreds of requests per second) does not read the
database for every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from appliance.domain import scopes as scope_rules
from appliance.domain.api_key_format import ApiKeySecret, secret_matches
from appliance.store.store import Store

TOUCH_EVERY = 60.0  # seconds between last_used_at updates of one key


class AuthFailure(Enum):
    MISSING = "authorization required"
    INVALID = "The provided authorization grant is invalid, expired, or revoked"
    TENANT_SUSPENDED = "Sending is suspended for this account; an operator must lift it"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key of one tenant with its scopes, or a person signed in to the
    admin UI (``user_id`` set; ``key_id`` is then the user's id) with their role's permissions."""

    tenant_id: str
    key_id: str
    key_name: str
    scopes: frozenset[str]
    user_id: str | None = None

    def has(self, scope: str) -> bool:
        return scope_rules.grants(self.scopes, scope)

    @property
    def actor(self) -> str:
        """Who did it, for audit columns and events: ``api_key:<id>`` or ``user:<id>``."""
        return f"user:{self.user_id}" if self.user_id else f"api_key:{self.key_id}"


@dataclass(slots=True)
class _Cached:
    secret_hash: str
    principal: Principal
    tenant_status: str
    expires: float


class KeyAuthenticator:
    def __init__(self, store: Store, *, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, token: str | None) -> Principal | AuthFailure:
        if not token:
            return AuthFailure.MISSING
        presented = ApiKeySecret.parse(token)
        if presented is None:
            return AuthFailure.INVALID
        now = time.monotonic()
        entry = self._cache.get(presented.key_id)
        if entry is None or entry.expires < now:
            creds = await self._store.api_keys.credentials(presented.key_id)
            if creds is None:
                self._cache.pop(presented.key_id, None)
                return AuthFailure.INVALID
            key = creds.key
            entry = _Cached(
                creds.secret_hash,
                # A key never carries more than API scopes, whatever its row says: the admin
                # UI's operator permissions (users.*, roles.*, tenants.*) are people's only.
                Principal(key.tenant_id, key.id, key.name, key.scopes & scope_rules.ALL_SCOPES),
                creds.tenant_status,
                now + self._ttl,
            )
            self._cache[presented.key_id] = entry
            await self._touch(key.id)
        if not secret_matches(presented.secret, entry.secret_hash):
            return AuthFailure.INVALID
        if entry.tenant_status != "active":
            return AuthFailure.TENANT_SUSPENDED
        return entry.principal

    def forget(self, key_id: str) -> None:
        """Drop a key from this node's cache at once (after delete or scope change)."""
        self._cache.pop(key_id, None)

    async def _touch(self, key_id: str) -> None:
        wall = time.time()
        if wall - self._touched.get(key_id, 0.0) >= TOUCH_EVERY:
            self._touched[key_id] = wall
            await self._store.api_keys.touch([key_id], wall)
