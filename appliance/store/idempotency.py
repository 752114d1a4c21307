"""Idempotency keys: a retried request gets the first answer instead of a second send."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import idempotency_keys


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    headers: dict[str, str]
    body: bytes


class IdempotencyKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, tenant_id: str, key: str, *, now: float) -> StoredResponse | None:
        def fn(conn: sa.Connection) -> StoredResponse | None:
            row = conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.tenant_id == tenant_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.expires_at > now,
                )
            ).first()
            if row is None:
                return None
            return StoredResponse(
                row.request_hash,
                row.status_code,
                json.loads(row.response_headers),
                row.response_body,
            )

        return await self._db.read(fn)

    async def put(
        self, tenant_id: str, key: str, response: StoredResponse, *, now: float, ttl: float
    ) -> None:
        def fn(conn: sa.Connection) -> None:
            where = (idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key)
            conn.execute(idempotency_keys.delete().where(*where))
            conn.execute(
                idempotency_keys.insert().values(
                    tenant_id=tenant_id,
                    key=key,
                    request_hash=response.request_hash,
                    status_code=response.status_code,
                    response_headers=json.dumps(response.headers),
                    response_body=response.body,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )

        await self._db.write(fn)

    async def purge_expired(self, *, now: float) -> int:
        def fn(conn: sa.Connection) -> int:
            return conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.expires_at <= now)
            ).rowcount

        return await self._db.write(fn)
