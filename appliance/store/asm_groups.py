"""ASM (unsubscribe) groups and their suppressions.

A group is SendGrid's "suppression group": a kind of mail a recipient can
opt out of alone (``asm.group_id`` of a send request). Its suppressions are
keyed like the suppression lists (``domain.acceptance.suppression_key``).
Removing an address from a group is a resubscribe: it writes a
``group_resubscribe`` event in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.store.schema import asm_group_suppressions, asm_groups
from appliance.store.suppressions import email_like, group_suppressed_in
from appliance.store.upserts import insert_for

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class AsmGroup:
    id: int
    tenant_id: str
    name: str
    description: str
    is_default: bool
    created_at: float
    unsubscribes: int = 0


class DuplicateGroupName(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a suppression group named {name!r} already exists: choose another name")
        self.name = name


def _count() -> Any:
    return (
        sa.select(sa.func.count())
        .where(asm_group_suppressions.c.group_id == asm_groups.c.id)
        .scalar_subquery()
    )


def _select() -> sa.Select[Any]:
    return sa.select(asm_groups, _count().label("unsubscribes"))


def _group(row: Any) -> AsmGroup:
    return AsmGroup(
        row.id,
        row.tenant_id,
        row.name,
        row.description,
        bool(row.is_default),
        row.created_at,
        int(row.unsubscribes or 0),
    )


def _get(conn: sa.Connection, tenant_id: str, group_id: int) -> AsmGroup | None:
    row = conn.execute(
        _select().where(asm_groups.c.tenant_id == tenant_id, asm_groups.c.id == group_id)
    ).first()
    return _group(row) if row else None


def group_exists(conn: sa.Connection, tenant_id: str, group_id: int) -> bool:
    found = conn.execute(
        sa.select(asm_groups.c.id).where(
            asm_groups.c.tenant_id == tenant_id, asm_groups.c.id == group_id
        )
    ).first()
    return found is not None


def insert_group_suppressions(
    conn: sa.Connection, tenant_id: str, group_id: int, keys: Iterable[str], now: float
) -> int:
    """Add keys to a group (already listed ones are kept); returns how many were new."""
    rows = [
        {"tenant_id": tenant_id, "group_id": group_id, "email": key, "created_at": now}
        for key in sorted(set(keys))
    ]
    if not rows:
        return 0
    stmt = insert_for(conn, asm_group_suppressions).on_conflict_do_nothing(
        index_elements=[asm_group_suppressions.c.group_id, asm_group_suppressions.c.email]
    )
    return conn.execute(stmt, rows).rowcount


def _check_name(conn: sa.Connection, tenant_id: str, name: str, group_id: int | None) -> None:
    stmt = sa.select(asm_groups.c.id).where(
        asm_groups.c.tenant_id == tenant_id, sa.func.lower(asm_groups.c.name) == name.lower()
    )
    if group_id is not None:
        stmt = stmt.where(asm_groups.c.id != group_id)
    if conn.execute(stmt).first() is not None:
        raise DuplicateGroupName(name)


def _clear_default(conn: sa.Connection, tenant_id: str) -> None:
    conn.execute(
        asm_groups.update()
        .where(asm_groups.c.tenant_id == tenant_id, asm_groups.c.is_default.is_(True))
        .values(is_default=False)
    )


class AsmGroups:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, tenant_id: str, *, name: str, description: str, is_default: bool
    ) -> AsmGroup:
        """A new group; one default group per tenant (a new default replaces the old)."""

        def fn(conn: sa.Connection) -> AsmGroup:
            _check_name(conn, tenant_id, name, None)
            if is_default:
                _clear_default(conn, tenant_id)
            new_id = conn.execute(
                asm_groups.insert()
                .values(
                    tenant_id=tenant_id,
                    name=name,
                    description=description,
                    is_default=is_default,
                    created_at=time.time(),
                )
                .returning(asm_groups.c.id)
            ).scalar_one()
            group = _get(conn, tenant_id, int(new_id))
            assert group is not None
            return group

        return await self._db.write(fn)

    async def for_tenant(self, tenant_id: str) -> list[AsmGroup]:
        stmt = _select().where(asm_groups.c.tenant_id == tenant_id).order_by(asm_groups.c.id)

        def fn(conn: sa.Connection) -> list[AsmGroup]:
            return [_group(row) for row in conn.execute(stmt)]

        return await self._db.read(fn)

    async def get(self, tenant_id: str, group_id: int) -> AsmGroup | None:
        return await self._db.read(lambda conn: _get(conn, tenant_id, group_id))

    async def update(
        self,
        tenant_id: str,
        group_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        is_default: bool | None = None,
    ) -> AsmGroup | None:
        """Change the given fields; None when the group does not exist."""

        def fn(conn: sa.Connection) -> AsmGroup | None:
            if _get(conn, tenant_id, group_id) is None:
                return None
            values: dict[str, Any] = {}
            if name is not None:
                _check_name(conn, tenant_id, name, group_id)
                values["name"] = name
            if description is not None:
                values["description"] = description
            if is_default is not None:
                if is_default:
                    _clear_default(conn, tenant_id)
                values["is_default"] = is_default
            if values:
                conn.execute(
                    asm_groups.update().where(asm_groups.c.id == group_id).values(**values)
                )
            return _get(conn, tenant_id, group_id)

        return await self._db.write(fn)

    async def delete(self, tenant_id: str, group_id: int) -> bool:
        def fn(conn: sa.Connection) -> bool:
            if not group_exists(conn, tenant_id, group_id):
                return False
            conn.execute(
                asm_group_suppressions.delete().where(asm_group_suppressions.c.group_id == group_id)
            )
            conn.execute(asm_groups.delete().where(asm_groups.c.id == group_id))
            return True

        return await self._db.write(fn)

    async def add_suppressions(self, tenant_id: str, group_id: int, keys: Iterable[str]) -> bool:
        """Add addresses to a group; False when the group does not exist."""
        wanted = list(keys)

        def fn(conn: sa.Connection) -> bool:
            if not group_exists(conn, tenant_id, group_id):
                return False
            insert_group_suppressions(conn, tenant_id, group_id, wanted, time.time())
            return True

        return await self._db.write(fn)

    async def suppressions(self, tenant_id: str, group_id: int) -> list[str] | None:
        """The group's addresses (sorted), or None when the group does not exist."""
        c = asm_group_suppressions.c

        def fn(conn: sa.Connection) -> list[str] | None:
            if not group_exists(conn, tenant_id, group_id):
                return None
            rows = conn.execute(
                sa.select(c.email).where(c.tenant_id == tenant_id, c.group_id == group_id)
            )
            return sorted(row.email for row in rows)

        return await self._db.read(fn)

    async def suppression_page(
        self,
        tenant_id: str,
        group_id: int,
        *,
        email: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[tuple[str, float]] | None:
        """One page of the group's ``(address, created_at)``, newest first; ``email`` is the
        suppression lists' pattern (a prefix, ``%`` any run). None when there is no group."""
        c = asm_group_suppressions.c
        stmt = sa.select(c.email, c.created_at).where(
            c.tenant_id == tenant_id, c.group_id == group_id
        )
        if email:
            stmt = stmt.where(c.email.like(email_like(email), escape="\\"))
        stmt = stmt.order_by(c.created_at.desc(), c.email).limit(limit).offset(offset)

        def fn(conn: sa.Connection) -> list[tuple[str, float]] | None:
            if not group_exists(conn, tenant_id, group_id):
                return None
            return [(row.email, row.created_at) for row in conn.execute(stmt)]

        return await self._db.read(fn)

    async def suppressed(self, tenant_id: str, group_id: int, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are suppressed in the group (none when it does not exist)."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        return await self._db.read(
            lambda conn: group_suppressed_in(conn, tenant_id, group_id, wanted)
        )

    async def resubscribe(self, tenant_id: str, group_id: int, key: str) -> bool | None:
        """Remove an address from a group with a ``group_resubscribe`` event.

        None when the group does not exist, False when the address was not in it.
        """
        c = asm_group_suppressions.c

        def fn(conn: sa.Connection) -> bool | None:
            if not group_exists(conn, tenant_id, group_id):
                return None
            removed = conn.execute(
                asm_group_suppressions.delete().where(c.group_id == group_id, c.email == key)
            ).rowcount
            if removed != 1:
                return False
            now = time.time()
            append_events(
                conn,
                [
                    event_row(
                        tenant_id, None, "group_resubscribe", key, {"asm_group_id": group_id}, now
                    )
                ],
            )
            return True

        return await self._db.write(fn)
