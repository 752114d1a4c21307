"""Per-destination back-off: doubling holds, episodes, reset on success."""

from __future__ import annotations

import pytest

from appliance.domain.destination_backoff import DestinationBackoff


def test_a_fresh_destination_is_not_held() -> None:
    backoff = DestinationBackoff()
    assert not backoff.is_held(1000.0)
    assert backoff.held_until <= 1000.0
    assert backoff.strikes == 0


def test_holds_double_from_30_seconds_up_to_15_minutes() -> None:
    backoff = DestinationBackoff()
    now = 1000.0
    holds = []
    for _ in range(8):
        until = backoff.on_throttled(now)
        holds.append(until - now)
        now = until  # sending resumes when the hold ends, and is throttled again
    assert holds == [30, 60, 120, 240, 480, 900, 900, 900]


def test_held_until_the_end_of_the_hold() -> None:
    backoff = DestinationBackoff()
    until = backoff.on_throttled(1000.0)
    assert until == backoff.held_until == 1030.0
    assert backoff.is_held(1000.0)
    assert backoff.is_held(1029.9)
    assert not backoff.is_held(1030.0)


def test_throttling_during_a_hold_is_the_same_episode() -> None:
    backoff = DestinationBackoff()
    first = backoff.on_throttled(1000.0)
    assert backoff.on_throttled(1001.0) == first  # another connection's 421
    assert backoff.on_throttled(1029.0) == first
    assert backoff.strikes == 1
    assert backoff.on_throttled(1030.0) == 1090.0  # after resuming: escalates


def test_success_resets_the_escalation_but_not_the_current_hold() -> None:
    backoff = DestinationBackoff()
    backoff.on_throttled(1000.0)
    backoff.on_throttled(1030.0)  # 60 s, until 1090
    backoff.on_success()
    assert backoff.strikes == 0
    assert backoff.is_held(1050.0)
    assert backoff.on_throttled(1090.0) == 1120.0  # back to 30 s


def test_custom_base_and_maximum() -> None:
    backoff = DestinationBackoff(base=10, maximum=25)
    assert backoff.on_throttled(0.0) == 10
    assert backoff.on_throttled(10.0) == 30
    assert backoff.on_throttled(30.0) == 55


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"base": 0}, "base must be a positive number"),
        ({"base": float("nan")}, "base must be a positive number"),
        ({"base": 60, "maximum": 30}, "no smaller than base"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        DestinationBackoff(**kwargs)
