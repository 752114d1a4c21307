"""SendGrid's statistics endpoints, from the daily roll-up (``store.stats``).

- ``GET /v3/stats``: all mail, ``[{"date", "stats": [{"metrics": {…16…}}]}]``
  per day, week or month (``aggregated_by``), every bucket of the range listed,
  zeros included; ``limit`` / ``offset`` page the buckets.
- ``GET /v3/categories/stats``: the same per bucket for each of up to ten
  ``categories`` (``{"metrics", "name", "type": "category"}``).
- ``GET /v3/categories/stats/sums``: ``{"date": start_date, "stats": [...]}``,
  one entry per category with mail in the range, sorted by ``sort_by_metric``
  (default ``delivered``) and ``sort_by_direction`` (default ``desc``), paged
  by ``limit`` (default 5) and ``offset``.
- ``GET /v3/stats/sum`` (Postyard's; SendGrid has none): the range's total,
  ``{"date": start_date, "stats": [{"metrics": {…}}]}``.
- ``POST /v3/stats/rebuild`` (scope ``stats.export``): recount the caller's
  tenant from its events; answers what was replayed.

Dates are UTC days (``YYYY-MM-DD``); ``end_date`` defaults to today. Bad
parameters are answered 400 with every problem at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from quart import Blueprint, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, FieldError
from appliance.domain.stats_metrics import METRICS, summed
from appliance.domain.stats_periods import (
    DateRange,
    StatsQueryError,
    bucket_totals,
    parse_aggregated_by,
    parse_range,
)

blueprint = Blueprint("stats", __name__, url_prefix="/v3")

MAX_CATEGORIES = 10
SUMS_DEFAULT_LIMIT = 5
_TAGS = ["Stats"]
_HELP = "https://docs.sendgrid.com/api-reference/stats/retrieve-global-email-statistics"
_CATEGORY_HELP = (
    "https://docs.sendgrid.com/api-reference/categories/retrieve-email-statistics-for-categories"
)

T = TypeVar("T")


class _Problems:
    """Collects every parameter problem of a request, then answers them together."""

    def __init__(self, help_url: str) -> None:
        self.errors: list[FieldError] = []
        self.help_url = help_url

    def check(self, parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except StatsQueryError as exc:
            self.errors.append(FieldError(exc.message, exc.field, self.help_url))
            return None

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(message, field, self.help_url))

    def raise_any(self) -> None:
        if self.errors:
            raise ApiError(400, self.errors[0].message, errors=self.errors)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _range(problems: _Problems) -> DateRange | None:
    return problems.check(
        lambda: parse_range(
            request.args.get("start_date"), request.args.get("end_date"), today=_today()
        )
    )


def _int(problems: _Problems, name: str, default: int | None, *, minimum: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        problems.add(name, f"{name} must be an integer of {minimum} or more; got {raw!r}")
        return default
    return int(text)


def _metrics_json(metrics: dict[str, int]) -> dict[str, int]:
    return {name: int(metrics.get(name, 0)) for name in METRICS}


# ---------------------------------------------------------------- routes


@blueprint.get("/stats")
@tag(_TAGS)
@requires("stats.read")
async def global_stats() -> Any:
    """Global email statistics per day, week or month (SendGrid's 16 metrics)."""
    problems = _Problems(_HELP)
    span = _range(problems)
    by = problems.check(lambda: parse_aggregated_by(request.args.get("aggregated_by")))
    limit = _int(problems, "limit", None, minimum=1)
    offset = _int(problems, "offset", 0, minimum=0) or 0
    problems.raise_any()
    assert span is not None
    assert by is not None
    days = await app_ctx().store.stats.daily(principal().tenant_id, span)
    buckets = bucket_totals(span, by, ((d.day, d.metrics) for d in days))
    page = buckets[offset : None if limit is None else offset + limit]
    return [
        {"date": label, "stats": [{"metrics": _metrics_json(metrics)}]} for label, metrics in page
    ]


def _categories(problems: _Problems) -> list[str]:
    names: list[str] = []
    for name in request.args.getlist("categories"):
        if name.strip() and name not in names:
            names.append(name)
    if not names:
        problems.add(
            "categories",
            "categories is required: name up to 10 categories, repeating the parameter "
            "(categories=a&categories=b)",
        )
    elif len(names) > MAX_CATEGORIES:
        problems.add(
            "categories",
            f"at most {MAX_CATEGORIES} categories can be asked for at once; got {len(names)}",
        )
    return names


@blueprint.get("/categories/stats")
@tag(_TAGS)
@requires("categories.stats.read")
async def category_stats() -> Any:
    """Email statistics of up to ten categories per day, week or month."""
    problems = _Problems(_CATEGORY_HELP)
    span = _range(problems)
    names = _categories(problems)
    by = problems.check(lambda: parse_aggregated_by(request.args.get("aggregated_by")))
    problems.raise_any()
    assert span is not None
    assert by is not None
    days = await app_ctx().store.stats.daily(principal().tenant_id, span, categories=names)
    per_category = {
        name: bucket_totals(span, by, ((d.day, d.metrics) for d in days if d.category == name))
        for name in names
    }
    labels = [label for label, _ in per_category[names[0]]]
    return [
        {
            "date": label,
            "stats": [
                {
                    "metrics": _metrics_json(per_category[name][index][1]),
                    "name": name,
                    "type": "category",
                }
                for name in names
            ],
        }
        for index, label in enumerate(labels)
    ]


@blueprint.get("/categories/stats/sums")
@tag(_TAGS)
@requires("categories.stats.sums.read")
async def category_sums() -> Any:
    """Each category's totals over the range, sorted by one metric, paged."""
    problems = _Problems(_CATEGORY_HELP)
    span = _range(problems)
    metric = (request.args.get("sort_by_metric") or "delivered").strip()
    if metric not in METRICS:
        problems.add(
            "sort_by_metric",
            f"sort_by_metric must be one of {', '.join(METRICS)}; got {metric!r}",
        )
    direction = (request.args.get("sort_by_direction") or "desc").strip().lower()
    if direction not in ("asc", "desc"):
        problems.add(
            "sort_by_direction", f"sort_by_direction must be asc or desc; got {direction!r}"
        )
    limit = _int(problems, "limit", SUMS_DEFAULT_LIMIT, minimum=1) or SUMS_DEFAULT_LIMIT
    offset = _int(problems, "offset", 0, minimum=0) or 0
    problems.check(lambda: parse_aggregated_by(request.args.get("aggregated_by")))
    problems.raise_any()
    assert span is not None
    sums = await app_ctx().store.stats.category_sums(principal().tenant_id, span)
    ordered = sorted(sums.items(), key=lambda item: item[0])  # ties by name, ascending
    ordered.sort(key=lambda item: item[1][metric], reverse=direction == "desc")
    return {
        "date": span.start.isoformat(),
        "stats": [
            {"metrics": _metrics_json(metrics), "name": name, "type": "category"}
            for name, metrics in ordered[offset : offset + limit]
        ],
    }


@blueprint.get("/stats/sum")
@tag(_TAGS)
@requires("stats.read")
async def global_sum() -> Any:
    """All mail's totals over the range (one entry; Postyard's, not SendGrid's)."""
    problems = _Problems(_HELP)
    span = _range(problems)
    problems.check(lambda: parse_aggregated_by(request.args.get("aggregated_by")))
    problems.raise_any()
    assert span is not None
    days = await app_ctx().store.stats.daily(principal().tenant_id, span)
    return {
        "date": span.start.isoformat(),
        "stats": [{"metrics": _metrics_json(summed(d.metrics for d in days))}],
    }


@blueprint.post("/stats/rebuild")
@tag(_TAGS)
@requires("stats.export")
async def rebuild() -> Any:
    """Recount this tenant's statistics from its stored events (replaces the roll-up)."""
    result = await app_ctx().store.stats.rebuild(principal().tenant_id)
    return {"events_replayed": result.events, "rows": result.rows}
