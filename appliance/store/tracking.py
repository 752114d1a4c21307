"""Writes behind the tracking links: open and click events, unsubscribes.

An unsubscribe is one transaction: the address goes on the tenant's global
``unsubscribes`` list, or into the message's ASM group when it has one that
still exists, and the ``unsubscribe`` / ``group_unsubscribe`` event is
appended with it (only when the address was not listed already, so repeated
clicks do not repeat the event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.store.asm_groups import group_exists
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.store.schema import asm_group_suppressions, suppressions
from appliance.store.suppressions import suppression_row
from appliance.store.upserts import insert_for

GLOBAL_LIST = "unsubscribes"


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    group_id: int | None  # None: the global unsubscribes list
    new: bool  # False when the address was listed already (no event written)


def _insert_new(conn: sa.Connection, table: sa.Table, row: dict[str, Any], key: list[str]) -> bool:
    """Insert one row unless its key is taken; whether it was inserted (by RETURNING,
    which both engines report exactly, unlike rowcount)."""
    stmt = (
        insert_for(conn, table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=key)
        .returning(table.c.email)
    )
    return conn.execute(stmt).first() is not None


class Tracking:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        tenant_id: str,
        message_id: str,
        event_type: str,
        recipient: str,
        data: dict[str, Any],
        *,
        now: float,
    ) -> None:
        """Append one ``open`` or ``click`` event."""
        row = event_row(tenant_id, message_id, event_type, recipient, data, now)
        await self._db.write(lambda conn: append_events(conn, [row]))

    async def unsubscribe(
        self,
        tenant_id: str,
        message_id: str,
        recipient: str,
        key: str,
        *,
        group_id: int | None,
        data: dict[str, Any],
        now: float,
    ) -> Unsubscribed:
        """Suppress ``key`` (the recipient's suppression key) globally or in ``group_id``."""

        def fn(conn: sa.Connection) -> Unsubscribed:
            group = group_id
            if group is not None and not group_exists(conn, tenant_id, group):
                group = None  # the group was deleted since: unsubscribe from everything
            if group is None:
                row = suppression_row(
                    tenant_id,
                    GLOBAL_LIST,
                    key,
                    reason="unsubscribed by the recipient",
                    status=None,
                    message_id=message_id,
                    now=now,
                )
                new = _insert_new(conn, suppressions, row, ["tenant_id", "email", "list_name"])
                event_type, event_data = "unsubscribe", data
            else:
                member = {
                    "tenant_id": tenant_id,
                    "group_id": group,
                    "email": key,
                    "created_at": now,
                }
                new = _insert_new(conn, asm_group_suppressions, member, ["group_id", "email"])
                event_type, event_data = "group_unsubscribe", {**data, "asm_group_id": group}
            if new:
                append_events(
                    conn, [event_row(tenant_id, message_id, event_type, recipient, event_data, now)]
                )
            return Unsubscribed(group, new)

        return await self._db.write(fn)
