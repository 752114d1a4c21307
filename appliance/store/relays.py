"""Smart-host relays: SMTP servers that take our mail instead of the recipients' MX hosts.

Relays are operator settings shared by every tenant; an IP pool names the
relay its mail goes through (``ip_pools.relay_id``). Names are unique.

The password is stored as a secret-box token (the caller encrypts; the
delivery engine and the relay test decrypt it) and is never shown by the API.
Deleting a relay leaves the pools that used it without one (``ON DELETE SET
NULL``): their mail goes direct to MX again. :meth:`Relays.delete` returns
those pools' names so the API can say so.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

import sqlalchemy as sa

from appliance.domain.ids import new_id
from appliance.store.database import Database
from appliance.store.schema import ip_pools, relays

TlsMode = Literal["starttls", "implicit", "none"]
AuthMechanismName = Literal["PLAIN", "LOGIN"]
TLS_MODES: tuple[TlsMode, ...] = get_args(TlsMode)
AUTH_MECHANISMS: tuple[AuthMechanismName, ...] = get_args(AuthMechanismName)


class RelayExistsError(Exception):
    """Another relay already has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a relay named {name!r} already exists")
        self.name = name


@dataclass(frozen=True, slots=True)
class Relay:
    id: str
    name: str
    host: str
    port: int
    tls_mode: TlsMode
    verify_tls: bool
    username: str | None
    password: str | None  # secret-box token, never the password itself
    auth_mechanism: AuthMechanismName | None  # None: the best the server offers (PLAIN, LOGIN)
    created_at: float
    updated_at: float

    def __repr__(self) -> str:  # keep the token out of logs
        return f"Relay({self.id!r}, {self.name!r}, {self.host}:{self.port}, {self.tls_mode})"


def _relay(row: Any) -> Relay:
    return Relay(
        id=row.id,
        name=row.name,
        host=row.host,
        port=row.port,
        tls_mode=row.tls_mode,
        verify_tls=bool(row.verify_tls),
        username=row.username,
        password=row.password,
        auth_mechanism=row.auth_mechanism,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(relay: Relay) -> dict[str, object]:
    return {
        "name": relay.name,
        "host": relay.host,
        "port": relay.port,
        "tls_mode": relay.tls_mode,
        "verify_tls": relay.verify_tls,
        "username": relay.username,
        "password": relay.password,
        "auth_mechanism": relay.auth_mechanism,
    }


def _is_name_conflict(exc: sa.exc.IntegrityError) -> bool:
    return any(m in str(exc.orig) for m in ("relays.name", "uq_relays_name"))


def _name_taken(c: sa.Connection, name: str, relay_id: str) -> bool:
    query = sa.select(relays.c.id).where(relays.c.name == name, relays.c.id != relay_id)
    return c.execute(query).first() is not None


def _select_one(c: sa.Connection, relay_id: str) -> Relay | None:
    row = c.execute(sa.select(relays).where(relays.c.id == relay_id)).first()
    return _relay(row) if row else None


class Relays:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        name: str,
        host: str,
        port: int,
        tls_mode: TlsMode,
        verify_tls: bool = True,
        username: str | None = None,
        password: str | None = None,
        auth_mechanism: AuthMechanismName | None = None,
    ) -> Relay:
        """Add a relay (``password`` already encrypted); RelayExistsError if the name is taken."""
        now = time.time()
        relay = Relay(
            new_id("rly"),
            name,
            host,
            port,
            tls_mode,
            verify_tls,
            username,
            password,
            auth_mechanism,
            now,
            now,
        )

        def fn(c: sa.Connection) -> Relay:
            if _name_taken(c, name, relay.id):
                raise RelayExistsError(name)
            try:
                c.execute(
                    relays.insert().values(
                        id=relay.id, created_at=now, updated_at=now, **_values(relay)
                    )
                )
            except sa.exc.IntegrityError as exc:  # inserted by another node meanwhile
                if _is_name_conflict(exc):
                    raise RelayExistsError(name) from None
                raise
            return relay

        return await self._db.write(fn)

    async def get(self, relay_id: str) -> Relay | None:
        return await self._db.read(lambda c: _select_one(c, relay_id))

    async def get_by_name(self, name: str) -> Relay | None:
        def fn(c: sa.Connection) -> Relay | None:
            row = c.execute(sa.select(relays).where(relays.c.name == name)).first()
            return _relay(row) if row else None

        return await self._db.read(fn)

    async def find(self, id_or_name: str) -> Relay | None:
        """The relay with this id, or else with this name."""
        return await self.get(id_or_name) or await self.get_by_name(id_or_name)

    async def list(self) -> builtins.list[Relay]:
        def fn(c: sa.Connection) -> builtins.list[Relay]:
            query = sa.select(relays).order_by(relays.c.name, relays.c.id)
            return [_relay(r) for r in c.execute(query).all()]

        return await self._db.read(fn)

    async def update(self, relay: Relay) -> Relay | None:
        """Write every setting of ``relay`` (found by its id); None if it no longer exists."""

        def fn(c: sa.Connection) -> Relay | None:
            if _name_taken(c, relay.name, relay.id):
                raise RelayExistsError(relay.name)
            try:
                c.execute(
                    relays.update()
                    .where(relays.c.id == relay.id)
                    .values(updated_at=time.time(), **_values(relay))
                )
            except sa.exc.IntegrityError as exc:
                if _is_name_conflict(exc):
                    raise RelayExistsError(relay.name) from None
                raise
            return _select_one(c, relay.id)

        return await self._db.write(fn)

    async def delete(self, relay_id: str) -> builtins.list[str] | None:
        """Delete the relay; the names of the pools that used it (now without one), or None
        if there was no such relay."""

        def fn(c: sa.Connection) -> builtins.list[str] | None:
            pools = c.execute(
                sa.select(ip_pools.c.name)
                .where(ip_pools.c.relay_id == relay_id)
                .order_by(ip_pools.c.name)
            ).all()
            result = c.execute(relays.delete().where(relays.c.id == relay_id))
            if result.rowcount != 1:
                return None
            return [name for (name,) in pools]

        return await self._db.write(fn)
