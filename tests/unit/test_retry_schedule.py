"""The retry schedule: its table, greylisting's short first retry, exhaustion, jitter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.domain.retry_schedule import RetryPolicy

EXACT = RetryPolicy(jitter=0)


@pytest.mark.parametrize(
    ("attempts_made", "greylisting", "expected"),
    [
        (1, False, 60.0),  # ~60 s
        (2, False, 300.0),  # ~5 min
        (3, False, 900.0),  # ~15 min
        (4, False, 3600.0),  # ~1 h
        (5, False, 14400.0),  # ~4 h
        (6, False, None),  # SMTP_MAX_RETRIES=5: the sixth failure is the last
        (1, True, 90.0),  # greylisting on the first attempt: the short retry
        (2, True, 300.0),  # greylisting again later: the schedule as usual
        (5, True, 14400.0),
        (6, True, None),  # greylisting does not add retries
    ],
)
def test_default_schedule(attempts_made: int, greylisting: bool, expected: float | None) -> None:
    assert EXACT.next_delay(attempts_made, greylisting=greylisting, rng=random.Random(0)) == (
        expected
    )


def test_base_delay_scales_the_whole_table() -> None:
    policy = RetryPolicy(base_delay=10, jitter=0)
    delays = [policy.nominal_delay(n) for n in range(1, 6)]
    assert delays == [10, 50, 150, 600, 2400]


def test_the_last_multiplier_repeats_for_more_retries() -> None:
    policy = RetryPolicy(max_retries=8, jitter=0)
    delays = [policy.nominal_delay(n) for n in range(1, 10)]
    assert delays == [60, 300, 900, 3600, 14400, 14400, 14400, 14400, None]
    assert policy.max_attempts == 9


def test_no_retries_configured_exhausts_at_once() -> None:
    policy = RetryPolicy(max_retries=0)
    assert policy.next_delay(1, greylisting=True, rng=random.Random(0)) is None
    assert policy.max_attempts == 1


def test_jitter_varies_the_delay() -> None:
    rng = random.Random(42)
    delays = {RetryPolicy().next_delay(1, greylisting=False, rng=rng) for _ in range(20)}
    assert len(delays) > 1


@given(
    attempts_made=st.integers(min_value=1, max_value=12),
    greylisting=st.booleans(),
    jitter=st.floats(min_value=0, max_value=0.99),
    base=st.floats(min_value=0.001, max_value=1e6),
    seed=st.integers(),
)
def test_jittered_delay_stays_within_bounds(
    attempts_made: int, greylisting: bool, jitter: float, base: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base, jitter=jitter, max_retries=10)
    nominal = policy.nominal_delay(attempts_made, greylisting=greylisting)
    delay = policy.next_delay(attempts_made, greylisting=greylisting, rng=random.Random(seed))
    if attempts_made > 10:
        assert nominal is None and delay is None
        return
    assert nominal is not None and delay is not None
    assert nominal * (1 - jitter) <= delay <= nominal * (1 + jitter)
    assert delay > 0


@given(seed=st.integers())
def test_default_delays_never_shrink_from_one_retry_to_the_next(seed: int) -> None:
    # +-10 % jitter never overlaps neighbouring steps of the default table (x5, x3, x4, x4).
    rng = random.Random(seed)
    policy = RetryPolicy()
    delays = [policy.next_delay(n, greylisting=False, rng=rng) for n in range(1, 6)]
    assert all(d is not None for d in delays)
    assert delays == sorted(delays)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"base_delay": 0}, "base_delay must be a positive number"),
        ({"base_delay": -5}, "SMTP_RETRY_BASE_DELAY"),
        ({"base_delay": float("inf")}, "base_delay"),
        ({"max_retries": -1}, "max_retries must be 0 or more"),
        ({"max_retries": 2.5}, "max_retries must be a whole number"),
        ({"multipliers": ()}, "at least one factor"),
        ({"multipliers": (1, 0, 5)}, "multipliers must all be positive"),
        ({"jitter": 1.0}, "jitter must be a fraction"),
        ({"jitter": -0.1}, "jitter must be a fraction"),
        ({"greylist_delay": 0}, "greylist_delay must be a positive number"),
    ],
)
def test_invalid_policies_are_refused_with_the_field_named(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_attempts_made_counts_the_failed_attempt(attempts_made: int) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        RetryPolicy().next_delay(attempts_made, greylisting=False, rng=random.Random(0))
