"""Operator accounts of the admin UI (local login; OIDC users are created on first login)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.ids import new_id
from appliance.store.database import Database
from appliance.store.schema import users


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: str
    tenant_id: str | None
    password_hash: str | None
    disabled: bool
    created_at: float
    totp_secret: str | None = None  # encrypted with the secret box
    failed_logins: int = 0
    locked_until: float | None = None
    oidc_issuer: str | None = None
    oidc_subject: str | None = None
    last_login_at: float | None = None

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None


def _user(row: Any) -> User:
    return User(
        row.id,
        row.email,
        row.name,
        row.role,
        row.tenant_id,
        row.password_hash,
        bool(row.disabled),
        row.created_at,
        row.totp_secret,
        row.failed_logins,
        row.locked_until,
        row.oidc_issuer,
        row.oidc_subject,
        row.last_login_at,
    )


class EmailTakenError(Exception):
    """Another user already has this email address."""


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        email: str,
        role: str,
        password_hash: str | None,
        tenant_id: str | None = None,
        name: str = "",
    ) -> User:
        user = User(
            new_id("usr"), email.lower(), name, role, tenant_id, password_hash, False, time.time()
        )
        await self._db.write(
            lambda c: c.execute(
                users.insert().values(
                    id=user.id,
                    email=user.email,
                    name=name,
                    role=role,
                    tenant_id=tenant_id,
                    password_hash=password_hash,
                    created_at=user.created_at,
                )
            )
        )
        return user

    async def get(self, user_id: str) -> User | None:
        def fn(c: sa.Connection) -> User | None:
            row = c.execute(sa.select(users).where(users.c.id == user_id)).first()
            return _user(row) if row else None

        return await self._db.read(fn)

    async def list(self) -> list[User]:
        def fn(c: sa.Connection) -> list[User]:
            return [_user(r) for r in c.execute(sa.select(users).order_by(users.c.email))]

        return await self._db.read(fn)

    async def update(self, user_id: str, **values: Any) -> User | None:
        """Set columns of one user (name, role, tenant_id, disabled, password_hash, totp_secret)."""

        def fn(c: sa.Connection) -> User | None:
            if "email" in values:
                values["email"] = values["email"].lower()
                taken = c.execute(
                    sa.select(users.c.id).where(
                        users.c.email == values["email"], users.c.id != user_id
                    )
                ).first()
                if taken:
                    raise EmailTakenError(values["email"])
            c.execute(users.update().where(users.c.id == user_id).values(**values))
            row = c.execute(sa.select(users).where(users.c.id == user_id)).first()
            return _user(row) if row else None

        return await self._db.write(fn)

    async def delete(self, user_id: str) -> bool:
        result = await self._db.write(
            lambda c: c.execute(users.delete().where(users.c.id == user_id))
        )
        return bool(result.rowcount == 1)

    async def record_failed_login(
        self, user_id: str, *, max_failures: int, lockout: float, now: float
    ) -> User | None:
        """Count a wrong password or code; the n-th in a row locks the account for ``lockout``."""

        def fn(c: sa.Connection) -> User | None:
            c.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(failed_logins=users.c.failed_logins + 1)
            )
            row = c.execute(sa.select(users).where(users.c.id == user_id)).first()
            if row is not None and row.failed_logins >= max_failures:
                c.execute(
                    users.update()
                    .where(users.c.id == user_id)
                    .values(failed_logins=0, locked_until=now + lockout)
                )
                row = c.execute(sa.select(users).where(users.c.id == user_id)).first()
            return _user(row) if row else None

        return await self._db.write(fn)

    async def record_login(self, user_id: str, *, now: float) -> None:
        await self._db.write(
            lambda c: c.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(failed_logins=0, locked_until=None, last_login_at=now)
            )
        )

    async def upsert_oidc(
        self, *, issuer: str, subject: str, email: str, name: str, role: str, link_email: bool
    ) -> User:
        """The user of an OpenID identity, created on first login; role and name follow the
        provider at every login. An existing local account with the same email is linked when
        ``link_email`` (the provider verified the address); otherwise EmailTakenError."""
        now = time.time()

        def fn(c: sa.Connection) -> User:
            row = c.execute(
                sa.select(users).where(
                    users.c.oidc_issuer == issuer, users.c.oidc_subject == subject
                )
            ).first()
            if row is None and email:
                row = c.execute(sa.select(users).where(users.c.email == email.lower())).first()
                if row is not None and (not link_email or row.oidc_subject is not None):
                    raise EmailTakenError(email)
            if row is None:
                user_id = new_id("usr")
                c.execute(
                    users.insert().values(
                        id=user_id,
                        email=(email or f"{subject}@{issuer}").lower()[:320],
                        name=name,
                        role=role,
                        oidc_issuer=issuer,
                        oidc_subject=subject,
                        created_at=now,
                    )
                )
            else:
                user_id = row.id
                c.execute(
                    users.update()
                    .where(users.c.id == user_id)
                    .values(
                        oidc_issuer=issuer, oidc_subject=subject, role=role, name=name or row.name
                    )
                )
            fresh = c.execute(sa.select(users).where(users.c.id == user_id)).first()
            return _user(fresh)

        return await self._db.write(fn)

    async def get_by_email(self, email: str) -> User | None:
        def fn(c: sa.Connection) -> User | None:
            row = c.execute(sa.select(users).where(users.c.email == email.lower())).first()
            return _user(row) if row else None

        return await self._db.read(fn)

    async def count(self) -> int:
        def fn(c: sa.Connection) -> int:
            return int(c.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())

        return await self._db.read(fn)
