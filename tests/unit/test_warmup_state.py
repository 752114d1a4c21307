"""Warm-up state as the admin UI shows it: day N of 14, today's cap, what is left."""

from __future__ import annotations

import calendar

from appliance.domain.warmup import WarmupSchedule, warmup_scope, warmup_state


def at(text: str) -> float:
    """Unix seconds of a UTC time written ``YYYY-MM-DD-HH:MM:SS``."""
    y, mo, d, h, mi, s = (int(p) for p in text.replace(":", "-").split("-"))
    return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))


START = at("2024-04-01-23:30:00")


def test_day_one_has_the_first_cap_and_counts_what_is_left() -> None:
    state = warmup_state(WarmupSchedule(), START, 20, START + 60)
    assert (state.day, state.days, state.cap, state.sent_today) == (1, 14, 50, 20)
    assert state.remaining == 30 and not state.finished


def test_the_day_changes_at_utc_midnight_and_nothing_is_left_over_the_cap() -> None:
    state = warmup_state(WarmupSchedule(), START, 150, at("2024-04-02-00:00:01"))
    assert (state.day, state.cap, state.remaining) == (2, 100, 0)


def test_after_the_last_day_there_is_no_cap() -> None:
    state = warmup_state(WarmupSchedule((5, 10)), START, 10**6, at("2024-04-03-00:00:00"))
    assert (state.day, state.cap, state.remaining, state.finished) == (3, None, None, True)


def test_scopes_name_the_counter_the_gate_counts_in() -> None:
    assert warmup_scope("pool", "transactional") == "pool:transactional"
    assert warmup_scope("domain", "mail.example.com") == "domain:mail.example.com"
