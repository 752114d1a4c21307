"""IP pools, relays and warm-up: where mail leaves from, through which smart host, how fast.

Pools and relays are appliance-wide operator settings (``/api/admin/ip_pools``,
``/api/admin/relays``); warm-up is shown for every pool and every sending domain
of the tenant as "day N of 14", today's cap and today's count (the shared
``send_counters``; each node adds its own count every few seconds, so the figure
may trail by that). The relay connection test (``POST /api/admin/relays/test``)
runs from the browser and ``delivery.js`` shows its steps.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint

from appliance.api.domains import domain_json
from appliance.api.ip_pools import pool_json
from appliance.api.relays import relay_json
from appliance.domain.warmup import (
    WarmupKind,
    WarmupSchedule,
    WarmupState,
    utc_day,
    warmup_scope,
    warmup_state,
)
from appliance.services.relay_test import DEFAULT_PORTS
from appliance.store.relays import TLS_MODES
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_delivery", __name__, url_prefix="/admin/delivery")


async def warmup_states(
    started: dict[tuple[WarmupKind, str], float | None], *, now: float
) -> dict[tuple[WarmupKind, str], WarmupState]:
    """Today's warm-up state of each ``(kind, name)`` warming up, from one counter read."""
    warming = {key: at for key, at in started.items() if at is not None}
    scopes = {key: warmup_scope(*key) for key in warming}
    counts = await ctx().store.send_counters.counts(list(scopes.values()), utc_day(now))
    schedule = WarmupSchedule()
    return {
        key: warmup_state(schedule, at, counts.get(scopes[key], 0), now)
        for key, at in warming.items()
    }


@blueprint.get("")
@page("ip_pools.read")
async def delivery_page() -> PageResult:
    store = ctx().store
    now = time.time()
    pools = await store.ip_pools.list()
    relays = (
        [relay_json(r) for r in await store.relays.list()] if session().has("relays.read") else []
    )
    domains = []
    if session().has("domains.read"):
        domains = [domain_json(d) for d in await store.domains.for_tenant(session().tenant_id)]
    started: dict[tuple[WarmupKind, str], float | None] = {
        **{("pool", p.name): p.warmup_started_at for p in pools},
        **{("domain", d["domain"]): d["warmup_started_at"] for d in domains},
    }
    states = await warmup_states(started, now=now)
    pool_rows: list[dict[str, Any]] = []
    for pool in pools:
        row = await pool_json(pool)
        row["warmup_state"] = states.get(("pool", pool.name))
        pool_rows.append(row)
    for d in domains:
        d["warmup_state"] = states.get(("domain", d["domain"]))
    return await render(
        "delivery/index.html",
        title="IP pools & relays",
        pools=pool_rows,
        relays=relays,
        domains=domains,
        tls_modes=TLS_MODES,
        default_ports=DEFAULT_PORTS,
    )
