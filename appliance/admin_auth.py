"""Admin UI sessions: a signed-in person, their role's permissions and their current tenant.

The browser holds a random token in an HttpOnly cookie; the store keeps only
its SHA-256 (``admin_sessions``). A session acts as a ``Principal`` of its
current tenant with the role's permissions, so the JSON API checks a person
exactly as it checks an API key: the UI hides what a role lacks, and the
server refuses it with the same 403 ``Missing required scope: …``.

State-changing requests from a session must carry the session's CSRF token
(``X-CSRF-Token`` header, or the ``csrf_token`` form field), and websocket
upgrades must come from the admin UI's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from appliance.auth import Principal
from appliance.config import Config
from appliance.store.roles import Role
from appliance.store.store import Store
from appliance.store.users import User

SESSION_COOKIE = "postyard_session"
TOUCH_EVERY = 60.0  # seconds between last_seen_at updates of one session


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A signed-in person for the length of one request."""

    token_hash: str
    user: User
    role: Role | None
    tenant_id: str
    csrf_token: str
    mfa_pending: bool

    @property
    def permissions(self) -> frozenset[str]:
        return self.role.permissions if self.role is not None else frozenset()

    def has(self, permission: str) -> bool:
        return self.principal.has(permission)

    def csrf_matches(self, sent: str | None) -> bool:
        """Whether a request carries this session's CSRF token (compared in constant time)."""
        return bool(sent) and hmac.compare_digest(sent or "", self.csrf_token)

    @property
    def principal(self) -> Principal:
        return Principal(
            tenant_id=self.tenant_id,
            key_id=self.user.id,
            key_name=self.user.email,
            scopes=self.permissions,
            user_id=self.user.id,
        )


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: float


class SessionAuthenticator:
    def __init__(self, store: Store, config: Config) -> None:
        self._store = store
        self._lifetime = config.admin_session_lifetime
        self._idle = config.admin_session_idle_timeout

    async def start(self, user: User, *, mfa_pending: bool, remote_addr: str | None) -> NewSession:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        record = await self._store.admin_sessions.create(
            token_hash=token_hash(token),
            user_id=user.id,
            tenant_id=user.tenant_id,
            csrf_token=csrf,
            mfa_pending=mfa_pending,
            lifetime=self._lifetime,
            remote_addr=remote_addr,
        )
        return NewSession(token, csrf, record.expires_at)

    async def open(
        self, token: str | None, *, allow_mfa_pending: bool = False
    ) -> AdminSession | None:
        """The session of a cookie's token, or None (unknown, expired, idle, user disabled)."""
        if not token:
            return None
        now = time.time()
        digest = token_hash(token)
        record = await self._store.admin_sessions.get(digest, now=now)
        if record is None:
            return None
        if now - record.last_seen_at > self._idle:
            await self._store.admin_sessions.delete(digest)
            return None
        if record.mfa_pending and not allow_mfa_pending:
            return None
        user = await self._store.users.get(record.user_id)
        if user is None or user.disabled:
            await self._store.admin_sessions.delete(digest)
            return None
        tenant_id = user.tenant_id or record.tenant_id or await self._first_tenant()
        if now - record.last_seen_at >= TOUCH_EVERY:
            await self._store.admin_sessions.update(digest, last_seen_at=now)
        role = await self._store.roles.get(user.role)
        return AdminSession(digest, user, role, tenant_id, record.csrf_token, record.mfa_pending)

    async def switch_tenant(self, session: AdminSession, tenant_id: str) -> None:
        await self._store.admin_sessions.update(session.token_hash, tenant_id=tenant_id)

    async def end(self, token: str) -> None:
        await self._store.admin_sessions.delete(token_hash(token))

    async def _first_tenant(self) -> str:
        tenants = await self._store.tenants.all()
        return tenants[0].id if tenants else ""
