"""Mail batch ids (``/v3/mail/batch``): group scheduled sends to pause or cancel them."""

from __future__ import annotations

import time

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import mail_batches


class Batches:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant_id: str, batch_id: str) -> None:
        await self._db.write(
            lambda c: c.execute(
                mail_batches.insert().values(
                    id=batch_id, tenant_id=tenant_id, created_at=time.time()
                )
            )
        )

    async def exists(self, tenant_id: str, batch_id: str) -> bool:
        def fn(conn: sa.Connection) -> bool:
            return (
                conn.execute(
                    sa.select(sa.literal(1)).where(
                        mail_batches.c.id == batch_id, mail_batches.c.tenant_id == tenant_id
                    )
                ).first()
                is not None
            )

        return await self._db.read(fn)
