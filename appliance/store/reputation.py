"""The reputation guard's reads and writes (rules in ``domain.reputation``).

:meth:`Reputation.check` judges every tenant with delivery events in the
longest window. Each tenant is judged in its own write transaction, holding
its ``tenants`` row locked, so two nodes running the guard at once never
both open the same alert episode or suspend twice.

State lives in the event log itself (``tenant_id``, ``message_id`` None):

- ``reputation_alert``: an episode opens (data: ``episode`` and the breach);
- ``reputation_recovered``: it ends;
- ``reputation_suspended``: the guard suspended the tenant (data: reason);
- ``reputation_reinstated``: an operator lifted it; only events after the
  latest one are judged for that tenant from then on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa

from appliance.domain.reputation import (
    LONGEST,
    WINDOWS,
    ZERO,
    Counts,
    Subject,
    Thresholds,
    Verdict,
    domain_of,
    judge,
)
from appliance.store.changes import ChangeCounter
from appliance.store.database import Database
from appliance.store.event_log import append_events
from appliance.store.messages import event_row
from appliance.store.schema import events, messages, tenants

ALERT = "reputation_alert"
RECOVERED = "reputation_recovered"
SUSPENDED = "reputation_suspended"
REINSTATED = "reputation_reinstated"
_COUNTED = ("delivered", "bounce", "spamreport")
# Event data is stored by ``encode_event_data``: compact JSON with sorted keys.
_HARD = '%"bounce!_type":"hard"%'


@dataclass(frozen=True, slots=True)
class TenantCheck:
    tenant_id: str
    verdict: Verdict
    suspended: bool  # this check suspended the tenant


class Reputation:
    def __init__(self, db: Database, changes: ChangeCounter | None = None) -> None:
        self._db = db
        self._changes = changes or ChangeCounter()

    async def check(self, thresholds: Thresholds, *, now: float) -> list[TenantCheck]:
        """Judge every tenant that delivered or bounced mail in the longest window."""
        since = now - LONGEST
        query = (
            sa.select(events.c.tenant_id)
            .where(events.c.created_at >= since, events.c.event_type.in_(_COUNTED))
            .distinct()
            .order_by(events.c.tenant_id)
        )

        def fn(c: sa.Connection) -> list[str]:
            return [str(t) for t in c.execute(query).scalars()]

        active = await self._db.read(fn)
        # Tenants quiet for a week still have their open episodes ended.
        quiet = [t for t in await self._db.read(_with_open_episodes) if t not in active]
        results = []
        for tenant_id in [*active, *quiet]:
            result = await self._changes.write(
                self._db, partial(_check, tenant_id=tenant_id, thresholds=thresholds, now=now)
            )
            if result is not None:
                results.append(result)
        return results

    async def reinstate(self, tenant_id: str, *, by: str, now: float) -> bool | None:
        """Lift a suspension; None for an unknown tenant, False when it was not suspended."""

        def fn(c: sa.Connection) -> bool | None:
            row = c.execute(
                sa.select(tenants.c.status, tenants.c.suspended_reason)
                .where(tenants.c.id == tenant_id)
                .with_for_update()
            ).first()
            if row is None:
                return None
            if row.status != "suspended":
                return False
            c.execute(
                tenants.update()
                .where(tenants.c.id == tenant_id)
                .values(status="active", suspended_reason=None)
            )
            data = {"by": by, "previous_reason": row.suspended_reason}
            append_events(c, [event_row(tenant_id, None, REINSTATED, None, data, now)])
            return True

        return await self._changes.write(self._db, fn)


def _check(
    c: sa.Connection, *, tenant_id: str, thresholds: Thresholds, now: float
) -> TenantCheck | None:
    tenant = c.execute(
        sa.select(tenants.c.status).where(tenants.c.id == tenant_id).with_for_update()
    ).first()
    if tenant is None:
        return None
    history = c.execute(
        sa.select(events.c.event_type, events.c.created_at, events.c.data)
        .where(
            events.c.tenant_id == tenant_id,
            events.c.event_type.in_([ALERT, RECOVERED, REINSTATED]),
        )
        .order_by(events.c.seq)
    ).all()
    open_episodes: set[str] = set()
    reinstated_at = 0.0
    for h in history:
        if h.event_type == REINSTATED:
            reinstated_at = h.created_at
            continue
        episode = json.loads(h.data).get("episode")
        if h.event_type == ALERT:
            open_episodes.add(episode)
        else:
            open_episodes.discard(episode)
    bounds = {w.name: max(now - w.seconds, reinstated_at) for w in WINDOWS}
    verdict = judge(_counts(c, tenant_id, bounds), thresholds, open_episodes=open_episodes)
    rows = [
        event_row(tenant_id, None, ALERT, None, {"episode": b.episode, **b.json()}, now)
        for b in verdict.new_alerts
    ]
    rows += [
        event_row(tenant_id, None, RECOVERED, None, {"episode": e}, now) for e in verdict.recovered
    ]
    suspended = False
    reason = verdict.suspension_reason
    if verdict.suspend is not None and reason is not None and tenant.status == "active":
        c.execute(
            tenants.update()
            .where(tenants.c.id == tenant_id)
            .values(status="suspended", suspended_reason=reason)
        )
        rows.append(
            event_row(
                tenant_id, None, SUSPENDED, None, {"reason": reason, **verdict.suspend.json()}, now
            )
        )
        suspended = True
    append_events(c, rows)
    return TenantCheck(tenant_id, verdict, suspended)


def _counts(
    c: sa.Connection, tenant_id: str, bounds: Mapping[str, float]
) -> dict[tuple[Subject, str], Counts]:
    kind = events.c.event_type
    volume = kind.in_(["delivered", "bounce"])
    hard = sa.and_(kind == "bounce", events.c.data.like(_HARD, escape="!"))
    complaint = kind == "spamreport"
    columns = []
    for name in sorted(bounds):
        recent = events.c.created_at >= bounds[name]
        for cond in (volume, hard, complaint):
            columns.append(
                sa.func.count(sa.distinct(sa.case((sa.and_(cond, recent), events.c.message_id))))
            )
    rows = c.execute(
        sa.select(messages.c.from_email, *columns)
        .select_from(events.join(messages, messages.c.id == events.c.message_id))
        .where(
            events.c.tenant_id == tenant_id,
            events.c.created_at >= min(bounds.values()),
            kind.in_(_COUNTED),
        )
        .group_by(messages.c.from_email)
    ).all()
    out: dict[tuple[Subject, str], Counts] = {}
    tenant = Subject("tenant", tenant_id)
    for row in rows:
        values: list[Any] = list(row)[1:]
        domain = Subject("domain", domain_of(row.from_email))
        for i, name in enumerate(sorted(bounds)):
            counts = Counts(*(int(v) for v in values[3 * i : 3 * i + 3]))
            for subject in (tenant, domain):
                out[(subject, name)] = out.get((subject, name), ZERO) + counts
    return out


def _with_open_episodes(c: sa.Connection) -> list[str]:
    rows = c.execute(
        sa.select(events.c.tenant_id, events.c.event_type, events.c.data)
        .where(events.c.event_type.in_([ALERT, RECOVERED]))
        .order_by(events.c.seq)
    ).all()
    open_: dict[str, set[str]] = {}
    for r in rows:
        episode = json.loads(r.data).get("episode")
        if r.event_type == ALERT:
            open_.setdefault(r.tenant_id, set()).add(episode)
        else:
            open_.get(r.tenant_id, set()).discard(episode)
    return sorted(t for t, eps in open_.items() if eps)
