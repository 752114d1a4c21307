"""Suppression lists: bounces, blocks, spam reports, invalid emails, unsubscribes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import suppressions
from appliance.store.upserts import insert_for

LISTS = ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes")


@dataclass(frozen=True, slots=True)
class Suppression:
    tenant_id: str
    list_name: str
    email: str
    reason: str | None
    status: str | None
    message_id: str | None
    created_at: float


def _suppression(row: Any) -> Suppression:
    return Suppression(
        row.tenant_id,
        row.list_name,
        row.email,
        row.reason,
        row.status,
        row.message_id,
        row.created_at,
    )


def suppression_row(
    tenant_id: str,
    list_name: str,
    email: str,
    *,
    reason: str | None,
    status: str | None,
    message_id: str | None,
    now: float,
) -> dict[str, Any]:
    """The row for one entry; ``email`` is the suppression key (``suppression_key``)."""
    if list_name not in LISTS:
        raise ValueError(f"unknown suppression list {list_name!r}")
    return {
        "tenant_id": tenant_id,
        "list_name": list_name,
        "email": email,
        "reason": reason,
        "status": status,
        "message_id": message_id,
        "created_at": now,
    }


def insert_or_keep(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert entries not listed yet; an existing entry keeps its first reason and time.

    Returns how many were inserted. ``rows`` come from :func:`suppression_row`.
    """
    if not rows:
        return 0
    stmt = insert_for(conn, suppressions).on_conflict_do_nothing(
        index_elements=[suppressions.c.tenant_id, suppressions.c.email, suppressions.c.list_name]
    )
    return conn.execute(stmt, list(rows)).rowcount


class Suppressions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lists_for(self, tenant_id: str, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """For each suppression key on any list: the lists it is on (one query per 500)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}

        def fn(conn: sa.Connection) -> dict[str, frozenset[str]]:
            found: dict[str, set[str]] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = conn.execute(
                    sa.select(suppressions.c.email, suppressions.c.list_name).where(
                        suppressions.c.tenant_id == tenant_id, suppressions.c.email.in_(chunk)
                    )
                ).all()
                for email, list_name in rows:
                    found.setdefault(email, set()).add(list_name)
            return {k: frozenset(v) for k, v in found.items()}

        return await self._db.read(fn)

    async def add(
        self,
        tenant_id: str,
        list_name: str,
        email: str,
        *,
        reason: str | None = None,
        status: str | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Add an entry; returns False when it was already there (kept unchanged)."""
        row = suppression_row(
            tenant_id,
            list_name,
            email,
            reason=reason,
            status=status,
            message_id=message_id,
            now=time.time(),
        )
        return await self._db.write(lambda conn: insert_or_keep(conn, [row]) == 1)

    async def get(self, tenant_id: str, list_name: str, email: str) -> Suppression | None:
        def fn(conn: sa.Connection) -> Suppression | None:
            row = conn.execute(
                sa.select(suppressions).where(
                    suppressions.c.tenant_id == tenant_id,
                    suppressions.c.list_name == list_name,
                    suppressions.c.email == email,
                )
            ).first()
            return _suppression(row) if row else None

        return await self._db.read(fn)

    async def remove(self, tenant_id: str, list_name: str, email: str) -> bool:
        def fn(conn: sa.Connection) -> bool:
            result = conn.execute(
                suppressions.delete().where(
                    suppressions.c.tenant_id == tenant_id,
                    suppressions.c.list_name == list_name,
                    suppressions.c.email == email,
                )
            )
            return result.rowcount == 1

        return await self._db.write(fn)
