"""Events → SendGrid's 16 metrics (``domain.stats_metrics``), and day/week/month buckets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from appliance.domain.stats_metrics import (
    DATA_EVENTS,
    METRICS,
    increments,
    summed,
    zero_metrics,
)
from appliance.domain.stats_periods import (
    MAX_RANGE_DAYS,
    AggregatedBy,
    DateRange,
    StatsQueryError,
    bucket_labels,
    bucket_totals,
    day_of,
    parse_aggregated_by,
    parse_range,
)
from appliance.store.schema import STAT_METRICS


def test_metric_names_are_sendgrids_sixteen_and_the_tables_columns() -> None:
    assert len(METRICS) == 16
    assert tuple(METRICS) == STAT_METRICS
    assert list(zero_metrics()) == list(METRICS)


@pytest.mark.parametrize(
    ("event_type", "data", "first", "expected"),
    [
        ("processed", {"x_message_id": "req"}, True, {"requests": 1, "processed": 1}),
        ("delivered", {}, True, {"delivered": 1}),
        ("deferred", {"attempt": 2}, True, {"deferred": 1}),
        ("bounce", {"bounce_type": "hard"}, True, {"bounces": 1}),
        ("bounce", {"bounce_type": "soft"}, True, {"bounces": 1}),
        ("bounce", {"bounce_type": "block"}, True, {"blocks": 1}),
        ("bounce", {}, True, {"bounces": 1}),
        ("spamreport", {}, True, {"spam_reports": 1}),
        ("dropped", {"reason": "suppressed_bounce"}, True, {"requests": 1, "bounce_drops": 1}),
        (
            "dropped",
            {"reason": "suppressed_spam_report"},
            True,
            {"requests": 1, "spam_report_drops": 1},
        ),
        (
            "dropped",
            {"reason": "suppressed_unsubscribe"},
            True,
            {"requests": 1, "unsubscribe_drops": 1},
        ),
        ("dropped", {"reason": "suppressed_invalid"}, True, {"requests": 1, "invalid_emails": 1}),
        ("dropped", {"reason": "render_failed"}, True, {}),
        ("dropped", {"reason": "tenant_suspended"}, True, {"requests": 1}),
        ("open", {}, True, {"opens": 1, "unique_opens": 1}),
        ("open", {}, False, {"opens": 1}),
        ("click", {"url": "https://x"}, True, {"clicks": 1, "unique_clicks": 1}),
        ("click", {"url": "https://x"}, False, {"clicks": 1}),
        ("unsubscribe", {}, True, {"unsubscribes": 1}),
        ("group_unsubscribe", {"asm_group_id": 3}, True, {"unsubscribes": 1}),
        ("group_resubscribe", {"asm_group_id": 3}, True, {}),
        ("requeued", {}, True, {}),
        ("cancelled", {}, True, {}),
        ("webhook_disabled", {}, True, {}),
        ("something_new", {}, True, {}),
    ],
)
def test_each_event_adds_sendgrids_metrics(
    event_type: str, data: dict[str, Any], first: bool, expected: dict[str, int]
) -> None:
    assert dict(increments(event_type, data, first_of_kind=first)) == expected
    assert set(expected) <= set(METRICS)


@pytest.mark.parametrize(
    "event_type",
    [
        "processed",
        "delivered",
        "deferred",
        "spamreport",
        "open",
        "click",
        "unsubscribe",
        "requeued",
    ],
)
def test_only_data_events_look_at_the_payload(event_type: str) -> None:
    """The roll-up skips decoding payloads of events outside ``DATA_EVENTS``."""
    assert event_type not in DATA_EVENTS
    payload = {"reason": "suppressed_bounce", "bounce_type": "block", "url": "https://x"}
    for first in (True, False):
        assert increments(event_type, payload, first_of_kind=first) == increments(
            event_type, {}, first_of_kind=first
        )


def test_requests_count_processed_and_acceptance_drops_once_each() -> None:
    """A message is either processed or dropped at acceptance; a later drop adds no request."""
    lifecycle = [
        increments("processed", {}, first_of_kind=True),
        increments("dropped", {"reason": "suppressed_bounce"}, first_of_kind=True),
        increments("processed", {}, first_of_kind=True),
        increments("dropped", {"reason": "render_failed"}, first_of_kind=True),
    ]
    total = summed(lifecycle)
    assert (total["requests"], total["processed"], total["bounce_drops"]) == (3, 2, 1)


def test_summed_lists_all_sixteen_metrics() -> None:
    total = summed([{"opens": 2}, {"opens": 1, "clicks": 4}])
    assert list(total) == list(METRICS)
    assert (total["opens"], total["clicks"], total["delivered"]) == (3, 4, 0)


# --- periods --------------------------------------------------------------------------------

D = dt.date


def test_day_of_is_the_utc_calendar_day() -> None:
    assert day_of(1_700_000_000.0) == "2023-11-14"  # 22:13 UTC
    assert day_of(dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.UTC).timestamp() - 0.5) == "2024-02-29"


def test_range_defaults_end_to_today_and_rejects_bad_input() -> None:
    assert parse_range("2024-01-05", None, today=D(2024, 1, 9)) == DateRange(
        D(2024, 1, 5), D(2024, 1, 9)
    )
    assert parse_range("2024-02-01", "", today=D(2024, 1, 9)).end == D(2024, 2, 1)
    cases = [
        (None, None, "start_date", "start_date is required"),
        ("2024-1-5", None, "start_date", "YYYY-MM-DD"),
        ("2024-02-30", None, "start_date", "YYYY-MM-DD"),
        ("2024-01-05", "tomorrow", "end_date", "YYYY-MM-DD"),
        ("2024-01-05", "2024-01-04", "end_date", "is before start_date"),
        ("2020-01-01", "2024-01-01", "end_date", f"longer than {MAX_RANGE_DAYS} days"),
    ]
    for start, end, field, words in cases:
        with pytest.raises(StatsQueryError) as err:
            parse_range(start, end, today=D(2024, 1, 9))
        assert err.value.field == field
        assert words in err.value.message


def test_aggregated_by_accepts_day_week_month_only() -> None:
    assert parse_aggregated_by(None) is AggregatedBy.DAY
    assert parse_aggregated_by("Week") is AggregatedBy.WEEK
    assert parse_aggregated_by("month") is AggregatedBy.MONTH
    with pytest.raises(StatsQueryError, match="must be day, week or month; got 'year'"):
        parse_aggregated_by("year")


def test_buckets_are_named_by_their_first_day_in_the_range() -> None:
    span = DateRange(D(2024, 1, 31), D(2024, 3, 5))  # a Wednesday to a Tuesday
    assert bucket_labels(span, AggregatedBy.MONTH) == ["2024-01-31", "2024-02-01", "2024-03-01"]
    weeks = bucket_labels(span, AggregatedBy.WEEK)
    assert weeks[:3] == ["2024-01-31", "2024-02-05", "2024-02-12"]
    assert weeks[-1] == "2024-03-04"
    assert all(D.fromisoformat(w).weekday() == 0 for w in weeks[1:])
    assert len(bucket_labels(span, AggregatedBy.DAY)) == 35


def test_bucket_totals_fill_empty_buckets_with_zeros_and_sum_the_rest() -> None:
    span = DateRange(D(2024, 1, 1), D(2024, 1, 14))  # Monday to Sunday, two weeks
    daily = [
        ("2024-01-02", {"delivered": 2}),
        ("2024-01-07", {"delivered": 1, "opens": 3}),
        ("2023-12-31", {"delivered": 100}),  # outside: ignored
    ]
    weeks = bucket_totals(span, AggregatedBy.WEEK, daily)
    assert [label for label, _ in weeks] == ["2024-01-01", "2024-01-08"]
    assert (weeks[0][1]["delivered"], weeks[0][1]["opens"]) == (3, 3)
    assert weeks[1][1] == zero_metrics()
    days = bucket_totals(span, AggregatedBy.DAY, daily)
    assert len(days) == 14
    assert days[1] == ("2024-01-02", {**zero_metrics(), "delivered": 2})


def test_a_message_counts_as_delivered_once() -> None:
    """A relay's agent reporting the final delivery must not count the message twice."""
    assert increments("delivered", {}, first_of_kind=True) == {"delivered": 1}
    assert dict(increments("delivered", {"source": "ingest"}, first_of_kind=False)) == {}
