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
    )


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

    async def get_by_email(self, email: str) -> User | None:
        def fn(c: sa.Connection) -> User | None:
            row = c.execute(sa.select(users).where(users.c.email == email.lower())).first()
            return _user(row) if row else None

        return await self._db.read(fn)

    async def count(self) -> int:
        def fn(c: sa.Connection) -> int:
            return int(c.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())

        return await self._db.read(fn)
