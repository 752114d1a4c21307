"""Reports received by the inbound server, and what each did to its message.

:meth:`InboundReports.record` keeps every report (the raw message
zlib-compressed) and, when one of its match keys names a message of ours,
applies the report in the same transaction: the event, the message's status,
the suppression entry (rules in ``domain.inbound_outcome``). So a report is
either stored with all its effects or not at all, and the inbound server can
answer 451 to make the sender try again.
"""

from __future__ import annotations

import builtins
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
import trio

from appliance.domain.acceptance import suppression_key
from appliance.domain.bounce_report import BounceReport
from appliance.domain.ids import new_id
from appliance.domain.inbound_outcome import (
    Finding,
    MatchKey,
    MessageFacts,
    ReportEffect,
    finding_for,
    is_duplicate,
    plan_effect,
    report_json,
)
from appliance.domain.message_status import MessageStatus
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.store.schema import events, inbound_reports, messages
from appliance.store.suppressions import insert_or_keep, suppression_row

KINDS = ("hard", "soft", "block", "complaint", "delayed", "not_a_bounce", "forwarded")


@dataclass(frozen=True, slots=True)
class IncomingReport:
    """A message the inbound server accepted, parsed, with the keys that may match it."""

    received_at: float
    remote_ip: str | None
    envelope_from: str | None
    envelope_to: tuple[str, ...]
    report: BounceReport
    raw: bytes
    keys: tuple[MatchKey, ...]
    envelope_tenant_id: str | None
    """The tenant owning the bounce domain(s) it was sent to; kept on an unmatched report."""


@dataclass(frozen=True, slots=True)
class InboundReport:
    """A stored report (without its raw message: see :meth:`InboundReports.raw`)."""

    id: str
    received_at: float
    remote_ip: str | None
    envelope_from: str | None
    envelope_to: list[str]
    kind: str
    tenant_id: str | None
    message_id: str | None
    matched_by: str | None
    recipient: str | None
    status: str | None
    diagnostic_code: str | None
    reporting_mta: str | None
    report: dict[str, Any]

    @property
    def matched(self) -> bool:
        return self.message_id is not None


@dataclass(frozen=True, slots=True)
class RecordedReport:
    """The stored report and what it changed."""

    report: InboundReport
    event_id: str | None = None
    event_type: str | None = None
    duplicate: bool = False  # the message already had this outcome: no second event
    status_changed: bool = False
    suppressed_in: str | None = None  # the list the recipient was added to (or already on)


def _report(row: Mapping[Any, Any]) -> InboundReport:
    return InboundReport(
        id=row["id"],
        received_at=row["received_at"],
        remote_ip=row["remote_ip"],
        envelope_from=row["envelope_from"],
        envelope_to=json.loads(row["envelope_to"]),
        kind=row["kind"],
        tenant_id=row["tenant_id"],
        message_id=row["message_id"],
        matched_by=row["matched_by"],
        recipient=row["recipient"],
        status=row["status"],
        diagnostic_code=row["diagnostic_code"],
        reporting_mta=row["reporting_mta"],
        report=json.loads(row["report"]),
    )


_SUMMARY_COLUMNS = [c for c in inbound_reports.c if c.name != "raw"]


class InboundReports:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, incoming: IncomingReport) -> RecordedReport:
        """Store the report and apply it to its message, in one transaction."""
        now = incoming.received_at
        report_id = new_id("rpt", now=now)
        parsed = report_json(incoming.report)
        # A report may be large: compress in a thread, and before taking the writer.
        raw = await trio.to_thread.run_sync(zlib.compress, incoming.raw, 6)

        def fn(conn: sa.Connection) -> RecordedReport:
            found = _find_message(conn, incoming.keys)
            if found is None:
                finding = finding_for(incoming.report, None)
                row = _row(report_id, incoming, finding, None, None, incoming.envelope_tenant_id)
                applied, kept = _Applied(), parsed
            else:
                message, key = found
                finding = finding_for(incoming.report, message.recipient)
                effect = plan_effect(
                    finding, message, report_id=report_id, matched_by=key.matched_by
                )
                applied = _apply(conn, message, effect, now)
                row = _row(report_id, incoming, finding, message, key, message.tenant_id)
                kept = {**parsed, "applied": asdict(applied)}
            row["report"] = _dump(kept)
            conn.execute(inbound_reports.insert(), [{**row, "raw": raw}])
            return RecordedReport(_report(row), **asdict(applied))

        return await self._db.write(fn)

    async def list(
        self,
        *,
        limit: int,
        offset: int = 0,
        matched: bool | None = None,
        kind: str | None = None,
        tenant_id: str | None = None,
        include_unattributed: bool = True,
    ) -> builtins.list[InboundReport]:
        """Newest first. ``tenant_id`` limits the list to that tenant's reports, plus
        those of no tenant when ``include_unattributed``; None lists every report."""
        conds: list[sa.ColumnElement[bool]] = []
        if matched is not None:
            column = inbound_reports.c.message_id
            conds.append(column.is_not(None) if matched else column.is_(None))
        if kind is not None:
            conds.append(inbound_reports.c.kind == kind)
        if tenant_id is not None:
            mine = inbound_reports.c.tenant_id == tenant_id
            conds.append(
                sa.or_(mine, inbound_reports.c.tenant_id.is_(None))
                if include_unattributed
                else mine
            )
        query = (
            sa.select(*_SUMMARY_COLUMNS)
            .where(*conds)
            .order_by(inbound_reports.c.received_at.desc(), inbound_reports.c.id.desc())
            .limit(limit)
            .offset(offset)
        )

        def fn(conn: sa.Connection) -> list[InboundReport]:
            return [_report(r._mapping) for r in conn.execute(query).all()]

        return await self._db.read(fn)

    async def get(self, report_id: str) -> InboundReport | None:
        def fn(conn: sa.Connection) -> InboundReport | None:
            row = conn.execute(
                sa.select(*_SUMMARY_COLUMNS).where(inbound_reports.c.id == report_id)
            ).first()
            return _report(row._mapping) if row is not None else None

        return await self._db.read(fn)

    async def raw(self, report_id: str) -> bytes | None:
        """The message exactly as received."""

        def fn(conn: sa.Connection) -> bytes | None:
            blob = conn.execute(
                sa.select(inbound_reports.c.raw).where(inbound_reports.c.id == report_id)
            ).scalar()
            return zlib.decompress(blob) if blob is not None else None

        return await self._db.read(fn)


@dataclass(frozen=True, slots=True)
class _Applied:
    """What a matched report did (the fields of RecordedReport after ``report``)."""

    event_id: str | None = None
    event_type: str | None = None
    duplicate: bool = False
    status_changed: bool = False
    suppressed_in: str | None = None


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _find_message(
    conn: sa.Connection, keys: Sequence[MatchKey]
) -> tuple[MessageFacts, MatchKey] | None:
    """The first key naming a message we have, that message locked for the update."""
    for key in keys:
        row = conn.execute(
            sa.select(
                messages.c.id,
                messages.c.tenant_id,
                messages.c.recipient,
                messages.c.request_id,
                messages.c.status,
                messages.c.from_email,
            )
            .where(messages.c.id == key.message_id)
            .with_for_update()
        ).first()
        if row is None:
            continue
        if key.domain is not None and row.from_email.rpartition("@")[2].lower() != key.domain:
            continue  # a Message-ID of ours names the sender's domain; this is someone else's
        facts = MessageFacts(
            row.id, row.tenant_id, row.recipient, row.request_id, MessageStatus(row.status)
        )
        return facts, key
    return None


def _apply(
    conn: sa.Connection, message: MessageFacts, effect: ReportEffect, now: float
) -> _Applied:
    if effect.event_type is None:
        return _Applied()
    existing = [
        (r.event_type, json.loads(r.data))
        for r in conn.execute(
            sa.select(events.c.event_type, events.c.data).where(
                events.c.message_id == message.id,
                events.c.event_type.in_(["bounce", "spamreport"]),
            )
        ).all()
    ]
    duplicate = is_duplicate(effect, existing)
    event_id = None
    if not duplicate:
        event = event_row(
            message.tenant_id,
            message.id,
            effect.event_type,
            message.recipient,
            dict(effect.event_data or {}),
            now,
        )
        append_events(conn, [event])
        event_id = event["id"]
    status_changed = False
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
        result = conn.execute(
            messages.update()
            .where(messages.c.id == message.id, messages.c.status == message.status.value)
            .values(**values)
        )
        status_changed = result.rowcount == 1
    suppressed_in = None
    if effect.suppression is not None:
        entry = effect.suppression
        insert_or_keep(
            conn,
            [
                suppression_row(
                    message.tenant_id,
                    entry.list_name,
                    suppression_key(message.recipient),
                    reason=entry.reason,
                    status=entry.status,
                    message_id=message.id,
                    now=now,
                )
            ],
        )
        suppressed_in = entry.list_name
    event_type = effect.event_type if event_id is not None else None
    return _Applied(event_id, event_type, duplicate, status_changed, suppressed_in)


def _row(
    report_id: str,
    incoming: IncomingReport,
    finding: Finding,
    message: MessageFacts | None,
    key: MatchKey | None,
    tenant_id: str | None,
) -> dict[str, Any]:
    return {
        "id": report_id,
        "received_at": incoming.received_at,
        "remote_ip": _clip(incoming.remote_ip, 64),
        "envelope_from": _clip(incoming.envelope_from, 320),
        "envelope_to": json.dumps(list(incoming.envelope_to)),
        "kind": finding.kind.value,
        "tenant_id": tenant_id,
        "message_id": message.id if message is not None else None,
        "matched_by": key.matched_by if key is not None else None,
        "recipient": _clip(finding.recipient, 320),
        "status": _clip(finding.status, 32),
        "diagnostic_code": finding.diagnostic_code,
        "reporting_mta": _clip(finding.reporting_mta, 255),
    }


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value is not None else None
