"""Appending events: the one way an event enters the store, with everything that follows it.

Every event row is written through :func:`append_events`, inside the
transaction that changed the state it reports. In the same transaction:

- one ``webhook_outbox`` row per webhook of the event's tenant whose event
  filter takes it (disabled webhooks too: re-enabling resumes from there),
  so no event is ever lost between the store and a webhook;
- the daily statistics roll-up (``store.stats_rollup``).

Readers that follow events live (the websocket stream) read the ``events``
table by ``seq``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from appliance.store.schema import events, webhook_outbox, webhooks
from appliance.store.stats_rollup import roll_up


def _wanted(event_types: str, event_type: str) -> bool:
    wanted = json.loads(event_types or "[]")
    return not wanted or event_type in wanted


def append_events(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows (see ``store.messages.event_row``) and their outbox and stats rows."""
    if not rows:
        return
    conn.execute(events.insert(), list(rows))
    tenants = {row["tenant_id"] for row in rows}
    hooks = conn.execute(
        sa.select(webhooks.c.id, webhooks.c.tenant_id, webhooks.c.event_types).where(
            webhooks.c.tenant_id.in_(tenants)
        )
    ).all()
    if hooks:
        outbox = [
            {
                "webhook_id": hook.id,
                "event_id": row["id"],
                "created_at": row["created_at"],
                "due_at": row["created_at"],
            }
            for row in rows
            for hook in hooks
            if hook.tenant_id == row["tenant_id"] and _wanted(hook.event_types, row["event_type"])
        ]
        if outbox:
            conn.execute(webhook_outbox.insert(), outbox)
    roll_up(conn, rows)
