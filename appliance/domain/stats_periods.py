"""Date ranges and their day / week / month buckets for the statistics API (pure).

Days are UTC calendar days (``YYYY-MM-DD``). A week runs Monday to Sunday
and a month is a calendar month. As SendGrid labels them, each bucket is
named by its first day inside the requested range: the first bucket of a
range that starts mid-week or mid-month is named by ``start_date``, every
other by its Monday or by the first of its month. Every bucket of the
range is listed, with zero metrics when nothing happened.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from appliance.domain.stats_metrics import zero_metrics

MAX_RANGE_DAYS = 3 * 366
"""Longest range one query may cover (three years)."""


class AggregatedBy(enum.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class StatsQueryError(ValueError):
    """A query parameter that cannot be used, with the parameter's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class DateRange:
    start: dt.date
    end: dt.date  # inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")

    def days(self) -> Iterator[dt.date]:
        day = self.start
        while day <= self.end:
            yield day
            day += dt.timedelta(days=1)


def day_of(timestamp: float) -> str:
    """The UTC day (``YYYY-MM-DD``) of a Unix time."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")


def parse_day(field: str, raw: str | None, *, default: dt.date | None = None) -> dt.date:
    if raw is None or raw.strip() == "":
        if default is not None:
            return default
        raise StatsQueryError(field, f"{field} is required: a date in the format YYYY-MM-DD")
    text = raw.strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise StatsQueryError(
            field,
            f"{field} must be a date in the format YYYY-MM-DD, such as 2024-01-31; got {raw!r}",
        ) from None


def parse_range(start_raw: str | None, end_raw: str | None, *, today: dt.date) -> DateRange:
    """``start_date`` (required) and ``end_date`` (default today), both inclusive."""
    start = parse_day("start_date", start_raw)
    end = parse_day("end_date", end_raw, default=max(today, start))
    if end < start:
        raise StatsQueryError(
            "end_date", f"end_date ({end}) is before start_date ({start}): swap them"
        )
    if (end - start).days >= MAX_RANGE_DAYS:
        raise StatsQueryError(
            "end_date",
            f"the range from {start} to {end} is longer than {MAX_RANGE_DAYS} days: "
            "ask for a shorter range",
        )
    return DateRange(start, end)


def parse_aggregated_by(raw: str | None) -> AggregatedBy:
    if raw is None or raw.strip() == "":
        return AggregatedBy.DAY
    try:
        return AggregatedBy(raw.strip().lower())
    except ValueError:
        raise StatsQueryError(
            "aggregated_by", f"aggregated_by must be day, week or month; got {raw!r}"
        ) from None


def period_start(day: dt.date, by: AggregatedBy) -> dt.date:
    if by is AggregatedBy.WEEK:
        return day - dt.timedelta(days=day.weekday())
    if by is AggregatedBy.MONTH:
        return day.replace(day=1)
    return day


def bucket_label(day: dt.date, by: AggregatedBy, span: DateRange) -> str:
    """The name of the bucket ``day`` falls in (see the module docstring)."""
    return max(period_start(day, by), span.start).isoformat()


def bucket_labels(span: DateRange, by: AggregatedBy) -> list[str]:
    """Every bucket of ``span`` in date order."""
    labels: list[str] = []
    for day in span.days():
        label = bucket_label(day, by, span)
        if not labels or labels[-1] != label:
            labels.append(label)
    return labels


def bucket_totals(
    span: DateRange, by: AggregatedBy, daily: Iterable[tuple[str, Mapping[str, int]]]
) -> list[tuple[str, dict[str, int]]]:
    """Every bucket of ``span`` with the sum of the days' metrics in it (all 16, zeros too).

    ``daily`` holds (``YYYY-MM-DD``, metrics) pairs; days outside ``span`` are ignored.
    """
    totals = {label: zero_metrics() for label in bucket_labels(span, by)}
    for day_text, metrics in daily:
        day = dt.date.fromisoformat(day_text)
        if not span.start <= day <= span.end:
            continue
        bucket = totals[bucket_label(day, by, span)]
        for name, value in metrics.items():
            bucket[name] += value
    return list(totals.items())
