"""The dashboard: volume and delivery, bounce and complaint rates over time; queue; health."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from quart import Blueprint, request

from appliance.domain.stats_periods import DateRange
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_dashboard", __name__, url_prefix="/admin")

SPANS = {"7": 7, "30": 30, "90": 90}


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def series(days: list[str], by_day: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Per-day figures for the charts: counts, and rates in percent of what was delivered or
    bounced (the denominator the reputation guard uses)."""
    rows: list[dict[str, Any]] = []
    for day in days:
        m = by_day.get(day, {})
        settled = m.get("delivered", 0) + m.get("bounces", 0)
        rows.append(
            {
                "day": day,
                "requests": m.get("requests", 0),
                "delivered": m.get("delivered", 0),
                "bounces": m.get("bounces", 0),
                "deferred": m.get("deferred", 0),
                "spam_reports": m.get("spam_reports", 0),
                "delivery_rate": _rate(m.get("delivered", 0), settled),
                "bounce_rate": _rate(m.get("bounces", 0), settled),
                "complaint_rate": _rate(m.get("spam_reports", 0), m.get("delivered", 0)),
            }
        )
    totals: dict[str, int] = {
        key: sum(int(r[key]) for r in rows)
        for key in ("requests", "delivered", "bounces", "deferred", "spam_reports")
    }
    settled = totals["delivered"] + totals["bounces"]
    totals_rates = {
        "delivery_rate": _rate(totals["delivered"], settled),
        "bounce_rate": _rate(totals["bounces"], settled),
        "complaint_rate": _rate(totals["spam_reports"], totals["delivered"]),
    }
    return {"rows": rows, "totals": totals, "rates": totals_rates}


@blueprint.get("/")
@page("stats.read")
async def dashboard() -> PageResult:
    store = ctx().store
    tenant_id = session().tenant_id
    span_key = request.args.get("days", "30")
    days_back = SPANS.get(span_key, 30)
    today = dt.datetime.now(dt.UTC).date()
    span = DateRange(today - dt.timedelta(days=days_back - 1), today)
    daily = await store.stats.daily(tenant_id, span)
    by_day = {d.day: d.metrics for d in daily}
    data = series([d.isoformat() for d in span.days()], by_day)
    depth = await store.queue.depth(now=time.time())
    statuses = await store.messages.count_by_status(tenant_id)
    return await render(
        "dashboard.html",
        title="Dashboard",
        data=data,
        days=days_back,
        spans=SPANS,
        depth=depth,
        statuses=statuses,
        services=ctx().health.snapshot(),
    )
