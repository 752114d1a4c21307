from __future__ import annotations

from appliance.api.rate_limit import RateLimiter
from appliance.domain import scopes
from appliance.domain.ids import new_id


def test_scope_names_follow_sendgrid() -> None:
    for name in [
        "mail.send",
        "api_keys.read",
        "api_keys.create",
        "suppression.bounces.read",
        "stats.read",
        "user.webhooks.event.settings.read",
        "templates.create",
    ]:
        assert name in scopes.ALL_SCOPES


def test_unknown_scopes_are_listed_sorted() -> None:
    assert scopes.unknown_scopes(["mail.send", "zz.top", "aa.bottom"]) == ["aa.bottom", "zz.top"]


def test_parent_suppression_scope_covers_each_list() -> None:
    assert scopes.grants(frozenset({"suppression.read"}), "suppression.bounces.read")
    assert not scopes.grants(frozenset({"suppression.read"}), "suppression.bounces.delete")
    assert not scopes.grants(frozenset({"mail.send"}), "api_keys.read")


def test_rate_limiter_counts_per_key_and_window() -> None:
    limiter = RateLimiter(limit=2, window=60)
    first = limiter.hit("a", now=120.0)
    assert (first.allowed, first.remaining, first.reset_at) == (True, 1, 180)
    assert limiter.hit("a", now=121.0).allowed
    denied = limiter.hit("a", now=122.0)
    assert not denied.allowed and denied.remaining == 0
    assert limiter.hit("b", now=122.0).allowed
    assert limiter.hit("a", now=180.0).allowed  # new window
    assert denied.headers() == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "180",
    }


def test_ids_sort_by_creation_time() -> None:
    early = new_id("msg", now=1_700_000_000.0)
    late = new_id("msg", now=1_700_000_000.5)
    assert early.startswith("msg_") and len(early) == 30
    assert early < late
