"""Tenants: isolated senders owning keys, domains, lists and statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.ids import new_id
from appliance.store.changes import ChangeCounter
from appliance.store.database import Database
from appliance.store.schema import tenants


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    status: str
    suspended_reason: str | None
    created_at: float

    @property
    def is_active(self) -> bool:
        return self.status == "active"


def _tenant(row: Any) -> Tenant:
    return Tenant(row.id, row.name, row.status, row.suspended_reason, row.created_at)


class Tenants:
    def __init__(self, db: Database, changes: ChangeCounter | None = None) -> None:
        self._db = db
        self._changes = changes or ChangeCounter()

    async def create(self, name: str) -> Tenant:
        tenant = Tenant(new_id("tnt"), name, "active", None, time.time())
        await self._changes.write(
            self._db,
            lambda c: c.execute(
                tenants.insert().values(
                    id=tenant.id, name=tenant.name, status="active", created_at=tenant.created_at
                )
            ),
        )
        return tenant

    async def get(self, tenant_id: str) -> Tenant | None:
        def fn(c: sa.Connection) -> Tenant | None:
            row = c.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).first()
            return _tenant(row) if row else None

        return await self._db.read(fn)

    async def all(self) -> list[Tenant]:
        def fn(c: sa.Connection) -> list[Tenant]:
            rows = c.execute(sa.select(tenants).order_by(tenants.c.created_at)).all()
            return [_tenant(r) for r in rows]

        return await self._db.read(fn)

    async def count(self) -> int:
        def fn(c: sa.Connection) -> int:
            return int(c.execute(sa.select(sa.func.count()).select_from(tenants)).scalar_one())

        return await self._db.read(fn)

    async def rename(self, tenant_id: str, name: str) -> bool:
        result = await self._changes.write(
            self._db,
            lambda c: c.execute(
                tenants.update().where(tenants.c.id == tenant_id).values(name=name)
            ),
        )
        return bool(result.rowcount == 1)

    async def set_status(self, tenant_id: str, status: str, reason: str | None = None) -> bool:
        if status not in ("active", "suspended"):
            raise ValueError(f"tenant status must be active or suspended, not {status!r}")

        def fn(c: sa.Connection) -> bool:
            result = c.execute(
                tenants.update()
                .where(tenants.c.id == tenant_id)
                .values(status=status, suspended_reason=reason if status == "suspended" else None)
            )
            return result.rowcount == 1

        return await self._changes.write(self._db, fn)
