"""Suppression lists: bounces, blocks, spam reports, invalid emails, unsubscribes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.acceptance import GROUP_UNSUBSCRIBES
from appliance.store.database import Database
from appliance.store.schema import asm_group_suppressions, suppressions
from appliance.store.upserts import insert_for

LISTS = ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes")
_CHUNK = 500  # keys per IN (…) list


def lists_in(conn: sa.Connection, tenant_id: str, keys: Iterable[str]) -> dict[str, frozenset[str]]:
    """:meth:`Suppressions.lists_for` inside a transaction."""
    wanted = sorted(set(keys))
    found: dict[str, set[str]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = conn.execute(
            sa.select(suppressions.c.email, suppressions.c.list_name).where(
                suppressions.c.tenant_id == tenant_id, suppressions.c.email.in_(chunk)
            )
        ).all()
        for email, list_name in rows:
            found.setdefault(email, set()).add(list_name)
    return {k: frozenset(v) for k, v in found.items()}


def group_suppressed_in(
    conn: sa.Connection, tenant_id: str, group_id: int, keys: Iterable[str]
) -> set[str]:
    """Which of ``keys`` are suppressed in the tenant's unsubscribe group ``group_id``."""
    wanted = sorted(set(keys))
    c = asm_group_suppressions.c
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            sa.select(c.email).where(
                c.tenant_id == tenant_id,
                c.group_id == group_id,
                c.email.in_(wanted[start : start + _CHUNK]),
            )
        )
        found.update(row.email for row in rows)
    return found


def send_lists_in(
    conn: sa.Connection, requests: Sequence[tuple[str, frozenset[str], int | None]]
) -> list[dict[str, frozenset[str]]]:
    """What acceptance drops recipients by, for each (tenant id, suppression keys, ASM
    group id or None) of a batch of requests: the lists each key is on, plus
    ``GROUP_UNSUBSCRIBES`` for the keys suppressed in the request's group. One query per
    tenant (and per group) of the batch, not per request."""
    by_tenant: dict[str, set[str]] = {}
    by_group: dict[tuple[str, int], set[str]] = {}
    for tenant_id, keys, group_id in requests:
        by_tenant.setdefault(tenant_id, set()).update(keys)
        if group_id is not None:
            by_group.setdefault((tenant_id, group_id), set()).update(keys)
    lists = {t: lists_in(conn, t, keys) for t, keys in by_tenant.items() if keys}
    groups = {g: group_suppressed_in(conn, *g, keys) for g, keys in by_group.items() if keys}
    found = []
    for tenant_id, keys, group_id in requests:
        on = lists.get(tenant_id, {})
        mine = {k: on[k] for k in keys if k in on}
        if group_id is not None:
            for key in groups.get((tenant_id, group_id), set()) & keys:
                mine[key] = mine.get(key, frozenset()) | {GROUP_UNSUBSCRIBES}
        found.append(mine)
    return found


@dataclass(frozen=True, slots=True)
class Suppression:
    tenant_id: str
    list_name: str
    email: str
    reason: str | None
    status: str | None
    message_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class SuppressionFilter:
    """Which entries of one list to show, newest first, and which page.

    ``email`` is SendGrid's pattern: a prefix of the address, where ``%``
    stands for any run of characters (``%market`` finds ``market`` anywhere).
    It is compared case-blind, as the lists are keyed.
    """

    created_from: float | None = None  # created_at >= this
    created_before: float | None = None  # created_at < this
    email: str | None = None
    limit: int = 500
    offset: int = 0


def email_like(pattern: str) -> str:
    """SendGrid's ``email`` filter as a LIKE pattern (escape character ``\\``)."""
    escaped = pattern.casefold().replace("\\", "\\\\").replace("_", "\\_")
    return escaped if escaped.endswith("%") else escaped + "%"


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
    stmt = (
        insert_for(conn, suppressions)
        .on_conflict_do_nothing(
            index_elements=[
                suppressions.c.tenant_id,
                suppressions.c.email,
                suppressions.c.list_name,
            ]
        )
        .returning(suppressions.c.email)
    )
    # Counted from RETURNING: rowcount is unreliable for ON CONFLICT DO NOTHING in batches.
    return len(conn.execute(stmt, list(rows)).all())


class Suppressions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lists_for(self, tenant_id: str, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """For each suppression key on any list: the lists it is on (one query per 500)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        return await self._db.read(lambda conn: lists_in(conn, tenant_id, wanted))

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

    async def add_many(self, tenant_id: str, list_name: str, keys: Iterable[str]) -> int:
        """Add entries (keys from ``suppression_key``) in one transaction.

        Returns how many were new; entries already listed keep their first reason and time.
        """
        now = time.time()
        rows = [
            suppression_row(
                tenant_id, list_name, key, reason=None, status=None, message_id=None, now=now
            )
            for key in sorted(set(keys))
        ]
        return await self._db.write(lambda conn: insert_or_keep(conn, rows))

    async def page(
        self, tenant_id: str, list_name: str, query: SuppressionFilter
    ) -> list[Suppression]:
        """One page of a list, newest first (ties by address), filtered by ``query``."""
        c = suppressions.c
        stmt = sa.select(suppressions).where(c.tenant_id == tenant_id, c.list_name == list_name)
        if query.created_from is not None:
            stmt = stmt.where(c.created_at >= query.created_from)
        if query.created_before is not None:
            stmt = stmt.where(c.created_at < query.created_before)
        if query.email:
            stmt = stmt.where(c.email.like(email_like(query.email), escape="\\"))
        stmt = stmt.order_by(c.created_at.desc(), c.email).limit(query.limit).offset(query.offset)

        def fn(conn: sa.Connection) -> list[Suppression]:
            return [_suppression(row) for row in conn.execute(stmt)]

        return await self._db.read(fn)

    async def remove_many(self, tenant_id: str, list_name: str, keys: Iterable[str]) -> int:
        """Remove the entries for ``keys`` (absent ones are skipped); returns how many went."""
        wanted = sorted(set(keys))

        def fn(conn: sa.Connection) -> int:
            removed = 0
            for start in range(0, len(wanted), _CHUNK):
                removed += conn.execute(
                    suppressions.delete().where(
                        suppressions.c.tenant_id == tenant_id,
                        suppressions.c.list_name == list_name,
                        suppressions.c.email.in_(wanted[start : start + _CHUNK]),
                    )
                ).rowcount
            return removed

        return await self._db.write(fn)

    async def remove_all(self, tenant_id: str, list_name: str) -> int:
        """Empty one list of one tenant; returns how many entries went."""

        def fn(conn: sa.Connection) -> int:
            result = conn.execute(
                suppressions.delete().where(
                    suppressions.c.tenant_id == tenant_id,
                    suppressions.c.list_name == list_name,
                )
            )
            return result.rowcount

        return await self._db.write(fn)
