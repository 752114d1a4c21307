"""API keys: stored as SHA-256 hashes of their secret, scoped, per tenant.

Every query takes the tenant id: a key of one tenant can never read,
change or delete another tenant's keys, whatever id it guesses.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import api_keys, tenants


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scopes: frozenset[str]
    created_at: float
    updated_at: float
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class ApiKeyCredentials:
    """What authentication needs: the key, its hash and its tenant's state."""

    key: ApiKey
    secret_hash: str
    tenant_status: str


def _key(row: Any) -> ApiKey:
    return ApiKey(
        row.id,
        row.tenant_id,
        row.name,
        frozenset(json.loads(row.scopes)),
        row.created_at,
        row.updated_at,
        row.last_used_at,
    )


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        key_id: str,
        tenant_id: str,
        name: str,
        scopes: frozenset[str],
        secret_hash: str,
        created_by: str | None = None,
    ) -> ApiKey:
        now = time.time()
        key = ApiKey(key_id, tenant_id, name, scopes, now, now, None)
        await self._db.write(
            lambda c: c.execute(
                api_keys.insert().values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    scopes=json.dumps(sorted(scopes)),
                    secret_hash=secret_hash,
                    created_at=now,
                    updated_at=now,
                    created_by=created_by,
                )
            )
        )
        return key

    async def credentials(self, key_id: str) -> ApiKeyCredentials | None:
        def fn(c: sa.Connection) -> ApiKeyCredentials | None:
            row = c.execute(
                sa.select(api_keys, tenants.c.status.label("tenant_status"))
                .join(tenants, tenants.c.id == api_keys.c.tenant_id)
                .where(api_keys.c.id == key_id)
            ).first()
            if row is None:
                return None
            return ApiKeyCredentials(_key(row), row.secret_hash, row.tenant_status)

        return await self._db.read(fn)

    async def get(self, tenant_id: str, key_id: str) -> ApiKey | None:
        def fn(c: sa.Connection) -> ApiKey | None:
            row = c.execute(
                sa.select(api_keys).where(
                    api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id
                )
            ).first()
            return _key(row) if row else None

        return await self._db.read(fn)

    async def for_tenant(self, tenant_id: str, *, limit: int | None = None) -> list[ApiKey]:
        def fn(c: sa.Connection) -> list[ApiKey]:
            query = (
                sa.select(api_keys)
                .where(api_keys.c.tenant_id == tenant_id)
                .order_by(api_keys.c.created_at, api_keys.c.id)
            )
            if limit is not None:
                query = query.limit(limit)
            return [_key(r) for r in c.execute(query).all()]

        return await self._db.read(fn)

    async def count(self, tenant_id: str) -> int:
        def fn(c: sa.Connection) -> int:
            query = sa.select(sa.func.count()).where(api_keys.c.tenant_id == tenant_id)
            return int(c.execute(query).scalar_one())

        return await self._db.read(fn)

    async def update(
        self,
        tenant_id: str,
        key_id: str,
        *,
        name: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> ApiKey | None:
        values: dict[str, object] = {"updated_at": time.time()}
        if name is not None:
            values["name"] = name
        if scopes is not None:
            values["scopes"] = json.dumps(sorted(scopes))

        def fn(c: sa.Connection) -> ApiKey | None:
            c.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
                .values(**values)
            )
            row = c.execute(
                sa.select(api_keys).where(
                    api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id
                )
            ).first()
            return _key(row) if row else None

        return await self._db.write(fn)

    async def delete(self, tenant_id: str, key_id: str) -> bool:
        def fn(c: sa.Connection) -> bool:
            result = c.execute(
                api_keys.delete().where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
            )
            return result.rowcount == 1

        return await self._db.write(fn)

    async def touch(self, key_ids: list[str], when: float) -> None:
        """Record use of keys (batched by the caller; best effort)."""
        if not key_ids:
            return
        await self._db.write(
            lambda c: c.execute(
                api_keys.update().where(api_keys.c.id.in_(key_ids)).values(last_used_at=when)
            )
        )
