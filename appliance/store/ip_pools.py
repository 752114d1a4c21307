"""IP pools: the source addresses a send request's ``ip_pool_name`` picks, and its relay.

Pools are operator settings shared by every tenant; names are unique (they
are what ``ip_pool_name`` in ``/v3/mail/send`` names). ``addresses`` are the
local addresses mail of the pool leaves from (empty: the appliance's default
route). With ``relay_id`` the pool's mail goes to that smart host instead of
the recipients' MX hosts. ``warmup_started_at`` set means warm-up caps apply,
rising from that day.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.ids import new_id
from appliance.store.database import Database
from appliance.store.schema import ip_pools


class IpPoolExistsError(Exception):
    """Another pool already has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an IP pool named {name!r} already exists")
        self.name = name


class RelayGoneError(Exception):
    """The pool names a relay that does not exist (deleted meanwhile)."""

    def __init__(self, relay_id: str) -> None:
        super().__init__(f"relay {relay_id!r} does not exist")
        self.relay_id = relay_id


@dataclass(frozen=True, slots=True)
class IpPool:
    id: str
    name: str
    addresses: tuple[str, ...]  # normalised IP addresses, in the order given
    relay_id: str | None
    warmup_started_at: float | None
    created_at: float
    updated_at: float

    @property
    def warming_up(self) -> bool:
        return self.warmup_started_at is not None


def _pool(row: Any) -> IpPool:
    return IpPool(
        id=row.id,
        name=row.name,
        addresses=tuple(json.loads(row.addresses)),
        relay_id=row.relay_id,
        warmup_started_at=row.warmup_started_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(pool: IpPool) -> dict[str, object]:
    return {
        "name": pool.name,
        "addresses": json.dumps(list(pool.addresses)),
        "relay_id": pool.relay_id,
        "warmup_started_at": pool.warmup_started_at,
    }


def _translate(exc: sa.exc.IntegrityError, pool: IpPool) -> Exception:
    text = str(exc.orig)
    if any(m in text for m in ("ip_pools.name", "uq_ip_pools_name")):
        return IpPoolExistsError(pool.name)
    if pool.relay_id is not None and any(
        m in text for m in ("FOREIGN KEY", "fk_ip_pools_relay_id_relays")
    ):
        return RelayGoneError(pool.relay_id)
    return exc


def _name_taken(c: sa.Connection, name: str, pool_id: str) -> bool:
    query = sa.select(ip_pools.c.id).where(ip_pools.c.name == name, ip_pools.c.id != pool_id)
    return c.execute(query).first() is not None


def _select_one(c: sa.Connection, pool_id: str) -> IpPool | None:
    row = c.execute(sa.select(ip_pools).where(ip_pools.c.id == pool_id)).first()
    return _pool(row) if row else None


class IpPools:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        name: str,
        addresses: Sequence[str],
        relay_id: str | None = None,
        warmup_started_at: float | None = None,
    ) -> IpPool:
        """Add a pool; IpPoolExistsError if the name is taken, RelayGoneError for a bad relay."""
        now = time.time()
        pool = IpPool(new_id("pool"), name, tuple(addresses), relay_id, warmup_started_at, now, now)

        def fn(c: sa.Connection) -> IpPool:
            if _name_taken(c, name, pool.id):
                raise IpPoolExistsError(name)
            try:
                c.execute(
                    ip_pools.insert().values(
                        id=pool.id, created_at=now, updated_at=now, **_values(pool)
                    )
                )
            except sa.exc.IntegrityError as exc:
                raise _translate(exc, pool) from None
            return pool

        return await self._db.write(fn)

    async def get(self, pool_id: str) -> IpPool | None:
        return await self._db.read(lambda c: _select_one(c, pool_id))

    async def get_by_name(self, name: str) -> IpPool | None:
        def fn(c: sa.Connection) -> IpPool | None:
            row = c.execute(sa.select(ip_pools).where(ip_pools.c.name == name)).first()
            return _pool(row) if row else None

        return await self._db.read(fn)

    async def find(self, id_or_name: str) -> IpPool | None:
        """The pool with this id, or else with this name."""
        return await self.get(id_or_name) or await self.get_by_name(id_or_name)

    async def list(self) -> builtins.list[IpPool]:
        def fn(c: sa.Connection) -> builtins.list[IpPool]:
            query = sa.select(ip_pools).order_by(ip_pools.c.name, ip_pools.c.id)
            return [_pool(r) for r in c.execute(query).all()]

        return await self._db.read(fn)

    async def update(self, pool: IpPool) -> IpPool | None:
        """Write every setting of ``pool`` (found by its id); None if it no longer exists."""

        def fn(c: sa.Connection) -> IpPool | None:
            if _name_taken(c, pool.name, pool.id):
                raise IpPoolExistsError(pool.name)
            try:
                c.execute(
                    ip_pools.update()
                    .where(ip_pools.c.id == pool.id)
                    .values(updated_at=time.time(), **_values(pool))
                )
            except sa.exc.IntegrityError as exc:
                raise _translate(exc, pool) from None
            return _select_one(c, pool.id)

        return await self._db.write(fn)

    async def delete(self, pool_id: str) -> bool:
        def fn(c: sa.Connection) -> bool:
            return c.execute(ip_pools.delete().where(ip_pools.c.id == pool_id)).rowcount == 1

        return await self._db.write(fn)
