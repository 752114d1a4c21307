"""Admin UI roles: name, description and the permissions (scope names) each grants."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.roles import BUILTIN_ROLES
from appliance.store.database import Database
from appliance.store.schema import roles, users


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    description: str
    permissions: frozenset[str]
    builtin: bool
    created_at: float
    updated_at: float


class RoleInUseError(Exception):
    """The role is still assigned to users."""


def _role(row: Any) -> Role:
    return Role(
        row.name,
        row.description,
        frozenset(json.loads(row.permissions)),
        bool(row.builtin),
        row.created_at,
        row.updated_at,
    )


class Roles:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_builtins(self) -> None:
        """Create the built-in roles that are missing (edited ones are left as they are)."""

        def fn(c: sa.Connection) -> None:
            have = set(c.execute(sa.select(roles.c.name)).scalars())
            now = time.time()
            rows = [
                {
                    "name": r.name,
                    "description": r.description,
                    "permissions": json.dumps(sorted(r.permissions)),
                    "builtin": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in BUILTIN_ROLES
                if r.name not in have
            ]
            if rows:
                c.execute(roles.insert(), rows)

        await self._db.write(fn)

    async def list(self) -> list[Role]:
        def fn(c: sa.Connection) -> list[Role]:
            rows = c.execute(sa.select(roles).order_by(roles.c.builtin.desc(), roles.c.name))
            return [_role(r) for r in rows]

        return await self._db.read(fn)

    async def get(self, name: str) -> Role | None:
        def fn(c: sa.Connection) -> Role | None:
            row = c.execute(sa.select(roles).where(roles.c.name == name)).first()
            return _role(row) if row else None

        return await self._db.read(fn)

    async def create(self, name: str, description: str, permissions: frozenset[str]) -> Role | None:
        """The new role, or None when the name is taken."""
        now = time.time()

        def fn(c: sa.Connection) -> Role | None:
            if c.execute(sa.select(roles.c.name).where(roles.c.name == name)).first():
                return None
            c.execute(
                roles.insert().values(
                    name=name,
                    description=description,
                    permissions=json.dumps(sorted(permissions)),
                    builtin=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            return Role(name, description, permissions, False, now, now)

        return await self._db.write(fn)

    async def update(
        self, name: str, *, description: str | None, permissions: frozenset[str] | None
    ) -> Role | None:
        values: dict[str, Any] = {"updated_at": time.time()}
        if description is not None:
            values["description"] = description
        if permissions is not None:
            values["permissions"] = json.dumps(sorted(permissions))

        def fn(c: sa.Connection) -> Role | None:
            c.execute(roles.update().where(roles.c.name == name).values(**values))
            row = c.execute(sa.select(roles).where(roles.c.name == name)).first()
            return _role(row) if row else None

        return await self._db.write(fn)

    async def delete(self, name: str) -> bool:
        """Delete a custom role; raises RoleInUseError while users hold it."""

        def fn(c: sa.Connection) -> bool:
            holders = c.execute(
                sa.select(sa.func.count()).select_from(users).where(users.c.role == name)
            ).scalar_one()
            if holders:
                raise RoleInUseError(f"{holders} user(s) still have role {name!r}")
            result = c.execute(
                roles.delete().where(roles.c.name == name, roles.c.builtin.is_(False))
            )
            return result.rowcount == 1

        return await self._db.write(fn)
