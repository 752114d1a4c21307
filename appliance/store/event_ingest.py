"""Applying an MTA agent's delivery reports (rules in ``domain.event_ingest``).

All reports of one request are applied in one transaction: each matched
message is read and locked, its bounce/delivered events looked up for
de-duplication, and the report's event, status change and suppression entry
written, the event through ``append_events`` like every other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from appliance.domain.acceptance import suppression_key
from appliance.domain.event_ingest import (
    ItemResult,
    ItemStatus,
    MessageFacts,
    Report,
    plan,
)
from appliance.domain.message_status import MessageStatus
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.store.schema import events, messages
from appliance.store.suppressions import insert_or_keep, suppression_row

UNKNOWN_MESSAGE = (
    "no message with this id belongs to the key's tenant; report only ids from our "
    "X-Postyard-Message-Id header or the bounces+<id>@ envelope sender"
)


class EventIngestion:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def apply(
        self, tenant_id: str, reports: Sequence[Report], *, now: float
    ) -> list[ItemResult]:
        """Apply ``reports`` for ``tenant_id``'s messages; one result per report, in order."""
        if not reports:
            return []
        return await self._db.write(lambda conn: _apply_all(conn, tenant_id, reports, now))


def _apply_all(
    conn: sa.Connection, tenant_id: str, reports: Sequence[Report], now: float
) -> list[ItemResult]:
    ids = sorted({r.message_id for r in reports})
    rows = conn.execute(
        sa.select(
            messages.c.id,
            messages.c.tenant_id,
            messages.c.recipient,
            messages.c.request_id,
            messages.c.status,
        )
        .where(messages.c.id.in_(ids), messages.c.tenant_id == tenant_id)
        .order_by(messages.c.id)
        .with_for_update()
    ).all()
    facts = {
        r.id: MessageFacts(r.id, r.tenant_id, r.recipient, r.request_id, MessageStatus(r.status))
        for r in rows
    }
    existing: dict[str, list[tuple[str, dict[str, Any]]]] = {m: [] for m in facts}
    if facts:
        for e in conn.execute(
            sa.select(events.c.message_id, events.c.event_type, events.c.data).where(
                events.c.message_id.in_(sorted(facts)),
                events.c.event_type.in_(["bounce", "delivered"]),
            )
        ).all():
            existing[e.message_id].append((e.event_type, json.loads(e.data)))
    results = []
    for report in reports:
        message = facts.get(report.message_id)
        if message is None:
            results.append(
                ItemResult(
                    report.index,
                    report.message_id,
                    ItemStatus.ERROR,
                    error=UNKNOWN_MESSAGE,
                    field="message_id",
                )
            )
            continue
        results.append(_apply_one(conn, report, message, existing[message.id], now))
        fresh = conn.execute(
            sa.select(messages.c.status).where(messages.c.id == message.id)
        ).scalar_one()
        facts[message.id] = MessageFacts(
            message.id, message.tenant_id, message.recipient, message.request_id,
            MessageStatus(fresh),
        )  # fmt: skip
    return results


def _apply_one(
    conn: sa.Connection,
    report: Report,
    message: MessageFacts,
    existing: list[tuple[str, dict[str, Any]]],
    now: float,
) -> ItemResult:
    effect = plan(report, message, existing, now=now)
    if effect.result is ItemStatus.ERROR:
        return ItemResult(report.index, report.message_id, ItemStatus.ERROR, error=effect.refusal)
    if effect.event_type is None:
        return ItemResult(report.index, report.message_id, effect.result)
    row = event_row(
        message.tenant_id,
        message.id,
        effect.event_type,
        message.recipient,
        effect.event_data,
        effect.occurred_at or now,
    )
    append_events(conn, [row])
    existing.append((effect.event_type, effect.event_data))
    if effect.new_status is not None:
        values: dict[str, Any] = {
            "status": effect.new_status.value,
            "error_message": effect.error_message,
            "lease_owner": None,
            "lease_until": None,
            "updated_at": now,
        }
        if effect.last_reply is not None:
            values["last_reply"] = effect.last_reply
        conn.execute(messages.update().where(messages.c.id == message.id).values(**values))
    if effect.suppression is not None:
        insert_or_keep(
            conn,
            [
                suppression_row(
                    message.tenant_id,
                    effect.suppression.list_name,
                    suppression_key(message.recipient),
                    reason=effect.suppression.reason,
                    status=effect.suppression.status,
                    message_id=message.id,
                    now=now,
                )
            ],
        )
    return ItemResult(report.index, report.message_id, ItemStatus.STORED, event_id=row["id"])
