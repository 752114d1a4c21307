"""The supervised reputation guard: judges every tenant's rates every few minutes.

Rules in ``domain.reputation``; reads and writes in ``store.reputation``.
Heartbeats go out while it waits, so ``/readyz`` shows it alive between checks.
"""

from __future__ import annotations

import logging
import time

import trio

from appliance.context import AppContext
from appliance.domain.reputation import Thresholds
from appliance.health import ServiceHealth

log = logging.getLogger("appliance.reputation")


def thresholds_from(ctx: AppContext) -> Thresholds:
    c = ctx.config
    return Thresholds(
        alert_hard_bounce=c.reputation_alert_hard_bounce_rate,
        alert_complaint=c.reputation_alert_complaint_rate,
        suspend_hard_bounce=c.reputation_suspend_hard_bounce_rate,
        suspend_complaint=c.reputation_suspend_complaint_rate,
        min_volume=c.reputation_min_volume,
    )


async def check_once(ctx: AppContext, thresholds: Thresholds) -> int:
    """One pass over all tenants; returns how many were suspended by it."""
    results = await ctx.store.reputation.check(thresholds, now=time.time())
    suspended = 0
    for r in results:
        for b in r.verdict.new_alerts:
            log.warning("reputation alert", extra={"tenant_id": r.tenant_id, **b.json()})
        if r.suspended:
            suspended += 1
            log.warning(
                "tenant suspended by the reputation guard",
                extra={"tenant_id": r.tenant_id, "reason": r.verdict.suspension_reason},
            )
            # This node's API key cache learns of it at once (others within its TTL).
    return suspended


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    """Check every ``reputation_check_interval`` until ``ctx.shutdown``."""
    thresholds = thresholds_from(ctx)  # a bad setting fails here, naming the key
    task_status.started()
    interval = ctx.config.reputation_check_interval
    while not ctx.shutdown.is_set():
        try:
            await check_once(ctx, thresholds)
        except Exception:
            log.exception("reputation check failed; trying again next interval")
        deadline = trio.current_time() + interval
        while not ctx.shutdown.is_set() and trio.current_time() < deadline:
            health.beat()
            with trio.move_on_at(
                min(deadline, trio.current_time() + ctx.config.heartbeat_interval)
            ):
                await ctx.shutdown.wait()
