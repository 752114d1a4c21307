"""The reputation guard's pure rules: rates, thresholds, episodes, suspension."""

from __future__ import annotations

import pytest

from appliance.domain.reputation import (
    Counts,
    Level,
    Metric,
    Subject,
    Thresholds,
    breaches,
    judge,
)

T = Subject("tenant", "tnt_1")
D = Subject("domain", "example.com")
RULES = Thresholds()


def test_below_the_minimum_volume_nothing_is_judged() -> None:
    assert breaches({(T, "24h"): Counts(99, 99, 99)}, RULES) == []


def test_alert_and_suspend_levels_at_their_thresholds() -> None:
    found = breaches({(T, "24h"): Counts(100, 5, 0), (D, "7d"): Counts(1000, 100, 5)}, RULES)
    assert [(b.subject, b.window.name, b.metric, b.level) for b in found] == [
        (D, "7d", Metric.HARD_BOUNCE, Level.SUSPEND),
        (D, "7d", Metric.COMPLAINT, Level.SUSPEND),
        (T, "24h", Metric.HARD_BOUNCE, Level.ALERT),
    ]


def test_an_open_episode_is_not_alerted_again_and_ends_when_rates_drop() -> None:
    counts = {(T, "24h"): Counts(200, 12, 0)}
    first = judge(counts, RULES, open_episodes=[])
    assert [b.episode for b in first.new_alerts] == ["tenant:tnt_1:hard_bounce_rate"]
    again = judge(counts, RULES, open_episodes=["tenant:tnt_1:hard_bounce_rate"])
    assert again.new_alerts == () and again.recovered == ()
    better = judge(
        {(T, "24h"): Counts(200, 1, 0)}, RULES, open_episodes=["tenant:tnt_1:hard_bounce_rate"]
    )
    assert better.recovered == ("tenant:tnt_1:hard_bounce_rate",)


def test_suspension_names_the_rate_its_value_and_the_threshold() -> None:
    verdict = judge(
        {(T, "24h"): Counts(200, 3, 0), (D, "24h"): Counts(150, 0, 2)}, RULES, open_episodes=[]
    )
    assert verdict.suspend is not None
    assert verdict.suspend.metric is Metric.COMPLAINT
    reason = verdict.suspension_reason or ""
    assert "complaint rate of domain example.com over the last 24h is 1.33%" in reason
    assert "(2 of 150 messages)" in reason and "threshold of 0.50%" in reason
    assert "reinstate" in reason


def test_only_alert_level_does_not_suspend() -> None:
    assert judge({(T, "7d"): Counts(1000, 60, 0)}, RULES, open_episodes=[]).suspend is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alert_hard_bounce": 0.2, "suspend_hard_bounce": 0.1},
        {"alert_complaint": 0},
        {"suspend_complaint": 5},
        {"min_volume": 0},
    ],
)
def test_inconsistent_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Thresholds(**kwargs)  # type: ignore[arg-type]
