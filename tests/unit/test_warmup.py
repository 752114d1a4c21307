"""Warm-up caps: the table, UTC day boundaries, and the cap check."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.domain.warmup import (
    DEFAULT_DAILY_CAPS,
    WarmupSchedule,
    next_day_start,
    over_cap,
    utc_day,
)

SCHEDULE = WarmupSchedule()


def at(text: str) -> float:
    """Unix seconds of a UTC time written ``YYYY-MM-DD HH:MM:SS``."""
    date, clock = text.split()
    y, mo, d = (int(p) for p in date.split("-"))
    h, mi, s = (int(p) for p in clock.split(":"))
    return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))


START = at("2024-04-01 23:30:00")  # half an hour before the end of day 1


@pytest.mark.parametrize(
    ("now", "day", "cap"),
    [
        ("2024-04-01 23:30:00", 1, 50),  # the start itself
        ("2024-04-01 23:59:59", 1, 50),  # still the start's UTC day
        ("2024-04-02 00:00:00", 2, 100),  # midnight UTC: day 2, 30 minutes after the start
        ("2024-04-03 12:00:00", 3, 200),
        ("2024-04-14 23:59:59", 14, 250_000),  # the last capped day
        ("2024-04-15 00:00:00", 15, None),  # warm-up over
        ("2024-06-01 00:00:00", 62, None),
        ("2024-04-01 20:00:00", 1, 50),  # before the start (another node's clock): day 1
        ("2024-03-20 00:00:00", 1, 50),
    ],
)
def test_days_count_in_utc_days_from_the_start_day(now: str, day: int, cap: int | None) -> None:
    assert SCHEDULE.day(START, at(now)) == day
    assert SCHEDULE.cap(START, at(now)) == cap


def test_default_caps_rise_over_fourteen_days() -> None:
    assert SCHEDULE.days == 14
    assert DEFAULT_DAILY_CAPS[0] == 50 and DEFAULT_DAILY_CAPS[-1] == 250_000
    caps = [SCHEDULE.cap(START, START + n * 86_400) for n in range(16)]
    assert caps == [*DEFAULT_DAILY_CAPS, None, None]


@pytest.mark.parametrize(
    ("now", "day", "next_start"),
    [
        ("2024-04-01 23:30:00", "2024-04-01", "2024-04-02 00:00:00"),
        ("2024-04-02 00:00:00", "2024-04-02", "2024-04-03 00:00:00"),
        ("2024-02-29 23:59:59", "2024-02-29", "2024-03-01 00:00:00"),
        ("2023-12-31 12:00:00", "2023-12-31", "2024-01-01 00:00:00"),
        ("1970-01-01 00:00:00", "1970-01-01", "1970-01-02 00:00:00"),
    ],
)
def test_utc_day_and_next_day_start(now: str, day: str, next_start: str) -> None:
    assert utc_day(at(now)) == day
    assert next_day_start(at(now)) == at(next_start)


def test_fractional_seconds_stay_in_their_day() -> None:
    assert utc_day(at("2024-04-02 00:00:00") - 0.001) == "2024-04-01"
    assert next_day_start(at("2024-04-01 23:59:59") + 0.999) == at("2024-04-02 00:00:00")


@given(now=st.floats(min_value=0, max_value=4_102_444_800))  # 1970 to 2100
def test_next_day_start_is_the_following_midnight(now: float) -> None:
    boundary = next_day_start(now)
    assert now < boundary <= now + 86_400
    assert boundary % 86_400 == 0
    assert utc_day(boundary) != utc_day(now)
    assert utc_day(boundary - 0.5) == utc_day(now)


@given(
    start=st.floats(min_value=0, max_value=4_000_000_000),
    offset=st.floats(min_value=0, max_value=40 * 86_400),
)
def test_the_cap_only_changes_at_utc_midnight(start: float, offset: float) -> None:
    now = start + offset
    day_start = next_day_start(now) - 86_400
    assert SCHEDULE.cap(start, now) == SCHEDULE.cap(start, max(day_start, start))


@pytest.mark.parametrize(
    ("sent_today", "adding", "expected"),
    [
        (0, 1, False),
        (49, 1, False),  # the 50th message still fits day 1's cap of 50
        (50, 1, True),
        (40, 10, False),
        (40, 11, True),
    ],
)
def test_over_cap(sent_today: int, adding: int, expected: bool) -> None:
    assert over_cap(SCHEDULE, START, sent_today, START, adding=adding) is expected


def test_no_cap_without_warmup_or_after_it() -> None:
    assert not over_cap(SCHEDULE, None, 10**9, START)
    assert not over_cap(SCHEDULE, START, 10**9, at("2024-04-15 00:00:00"))


@pytest.mark.parametrize(
    ("caps", "fragment"),
    [
        ((), "at least one day's cap"),
        ((50, 0, 100), "day 2's cap must be a whole number of 1 or more"),
        ((50, 2.5), "day 2's cap"),
        ((100, 50), "must not fall from one day to the next: day 2 allows 50"),
    ],
)
def test_invalid_schedules_are_refused(caps: tuple[int, ...], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        WarmupSchedule(caps)
