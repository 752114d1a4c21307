"""Browser sessions of the admin UI, looked up by the SHA-256 of the cookie's token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import admin_sessions


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    user_id: str
    tenant_id: str | None
    csrf_token: str
    mfa_pending: bool
    created_at: float
    expires_at: float
    last_seen_at: float


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        row.token_hash,
        row.user_id,
        row.tenant_id,
        row.csrf_token,
        bool(row.mfa_pending),
        row.created_at,
        row.expires_at,
        row.last_seen_at,
    )


class AdminSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        token_hash: str,
        user_id: str,
        tenant_id: str | None,
        csrf_token: str,
        mfa_pending: bool,
        lifetime: float,
        remote_addr: str | None,
    ) -> SessionRecord:
        now = time.time()
        record = SessionRecord(
            token_hash, user_id, tenant_id, csrf_token, mfa_pending, now, now + lifetime, now
        )

        def fn(c: sa.Connection) -> None:
            c.execute(admin_sessions.delete().where(admin_sessions.c.expires_at < now))
            c.execute(
                admin_sessions.insert().values(
                    token_hash=token_hash,
                    user_id=user_id,
                    tenant_id=tenant_id,
                    csrf_token=csrf_token,
                    mfa_pending=mfa_pending,
                    created_at=now,
                    expires_at=record.expires_at,
                    last_seen_at=now,
                    remote_addr=remote_addr,
                )
            )

        await self._db.write(fn)
        return record

    async def get(self, token_hash: str, *, now: float) -> SessionRecord | None:
        def fn(c: sa.Connection) -> SessionRecord | None:
            row = c.execute(
                sa.select(admin_sessions).where(
                    admin_sessions.c.token_hash == token_hash, admin_sessions.c.expires_at > now
                )
            ).first()
            return _record(row) if row else None

        return await self._db.read(fn)

    async def update(self, token_hash: str, **values: Any) -> None:
        """Set columns of one session (last_seen_at, tenant_id, mfa_pending)."""
        await self._db.write(
            lambda c: c.execute(
                admin_sessions.update()
                .where(admin_sessions.c.token_hash == token_hash)
                .values(**values)
            )
        )

    async def delete(self, token_hash: str) -> None:
        await self._db.write(
            lambda c: c.execute(
                admin_sessions.delete().where(admin_sessions.c.token_hash == token_hash)
            )
        )

    async def delete_for_user(self, user_id: str, *, keep: str | None = None) -> None:
        """End a user's sessions (password change, disable), optionally all but one."""

        def fn(c: sa.Connection) -> None:
            where = admin_sessions.c.user_id == user_id
            if keep is not None:
                where = sa.and_(where, admin_sessions.c.token_hash != keep)
            c.execute(admin_sessions.delete().where(where))

        await self._db.write(fn)
