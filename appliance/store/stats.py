"""Reading the daily statistics, and rebuilding them from the event log.

Rows are ``stats_daily`` (see ``store.stats_rollup``): per tenant, UTC day and
category, category ``""`` for all mail. Readers get day-by-day metrics;
grouping into weeks and months is ``domain.stats_periods``' job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from appliance.domain.stats_metrics import (
    DATA_EVENTS,
    FIRST_OF_KIND_EVENTS,
    METRICS,
    increments,
)
from appliance.domain.stats_periods import DateRange
from appliance.store.database import Database
from appliance.store.schema import events, messages, stats_daily
from appliance.store.stats_rollup import ALL_MAIL, Totals, add_event, upsert_totals

REBUILD_BATCH = 5000
"""Events read per query while rebuilding."""


@dataclass(frozen=True, slots=True)
class DailyStats:
    day: str  # YYYY-MM-DD
    category: str  # "" for all mail
    metrics: dict[str, int]


@dataclass(frozen=True, slots=True)
class RebuildResult:
    events: int  # events replayed
    rows: int  # stats_daily rows written


def _metrics(row: sa.Row[tuple[object, ...]]) -> dict[str, int]:
    mapping = row._mapping
    return {name: int(mapping[name] or 0) for name in METRICS}


class Stats:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def daily(
        self, tenant_id: str, span: DateRange, *, categories: Sequence[str] | None = None
    ) -> list[DailyStats]:
        """Days with activity in ``span``, for all mail or for ``categories``, by day."""
        wanted = [ALL_MAIL] if categories is None else sorted(set(categories))
        query = (
            sa.select(stats_daily)
            .where(
                stats_daily.c.tenant_id == tenant_id,
                stats_daily.c.day >= span.start.isoformat(),
                stats_daily.c.day <= span.end.isoformat(),
                stats_daily.c.category.in_(wanted),
            )
            .order_by(stats_daily.c.day, stats_daily.c.category)
        )

        def fn(conn: sa.Connection) -> list[DailyStats]:
            return [DailyStats(r.day, r.category, _metrics(r)) for r in conn.execute(query)]

        return await self._db.read(fn)

    async def category_sums(self, tenant_id: str, span: DateRange) -> dict[str, dict[str, int]]:
        """Each category with activity in ``span`` and its summed metrics."""
        query = (
            sa.select(
                stats_daily.c.category,
                *(sa.func.sum(stats_daily.c[name]).label(name) for name in METRICS),
            )
            .where(
                stats_daily.c.tenant_id == tenant_id,
                stats_daily.c.day >= span.start.isoformat(),
                stats_daily.c.day <= span.end.isoformat(),
                stats_daily.c.category != ALL_MAIL,
            )
            .group_by(stats_daily.c.category)
            .order_by(stats_daily.c.category)
        )

        def fn(conn: sa.Connection) -> dict[str, dict[str, int]]:
            return {r.category: _metrics(r) for r in conn.execute(query)}

        return await self._db.read(fn)

    async def rebuild(self, tenant_id: str, *, batch_size: int = REBUILD_BATCH) -> RebuildResult:
        """Recount the tenant's statistics from all its events, in one transaction.

        The tenant's rows are deleted and every event is replayed in order
        (by ``seq``) through the same mapping as the live roll-up, so the
        result equals what the roll-up kept (or should have kept).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, not {batch_size}")
        source = (
            sa.select(
                events.c.seq,
                events.c.message_id,
                events.c.event_type,
                events.c.created_at,
                events.c.data,
                messages.c.category,
                messages.c.sandbox,
            )
            .join(messages, messages.c.id == events.c.message_id)
            .where(events.c.tenant_id == tenant_id)
            .order_by(events.c.seq)
            .limit(batch_size)
        )

        def fn(conn: sa.Connection) -> RebuildResult:
            conn.execute(stats_daily.delete().where(stats_daily.c.tenant_id == tenant_id))
            totals: Totals = {}
            seen: set[tuple[str, str]] = set()
            replayed = 0
            after = -1
            while True:
                batch = conn.execute(source.where(events.c.seq > after)).all()
                if not batch:
                    break
                after = batch[-1].seq
                for row in batch:
                    replayed += 1
                    if row.sandbox:
                        continue
                    key = (row.message_id, row.event_type)
                    first = key not in seen
                    if row.event_type in FIRST_OF_KIND_EVENTS:
                        seen.add(key)
                    add_event(
                        totals,
                        tenant_id=tenant_id,
                        created_at=row.created_at,
                        category=row.category,
                        added=increments(
                            row.event_type,
                            json.loads(row.data or "{}") if row.event_type in DATA_EVENTS else {},
                            first_of_kind=first,
                        ),
                    )
            upsert_totals(conn, totals)
            return RebuildResult(replayed, len(totals))

        return await self._db.write(fn)
