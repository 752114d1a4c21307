"""SRS0 rewriting (appliance.domain.srs): the spec's format, round trips, refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.domain import srs

SECRET = b"k" * 32
OTHER_SECRET = b"o" * 32
OURS = "bounces.sender.test"
NOW = 1_780_000_000.0  # day 20601
DAY = 86_400


def test_srs0_format_as_in_the_spec() -> None:
    rewritten = srs.forward("Alice@Customer.example", our_domain=OURS, secret=SECRET, now=NOW)

    local, _, domain = rewritten.rpartition("@")
    assert domain == OURS
    prefix, digest, stamp, original_domain, original_local = local.split("=")
    assert (prefix, original_domain, original_local) == ("SRS0", "Customer.example", "Alice")
    # Day 20601 % 1024 = 121 = 3 * 32 + 25: "D" then "Z".
    assert stamp == "DZ" == srs.timestamp(NOW)
    mac = hmac.new(SECRET, b"dz" + b"customer.example" + b"alice", hashlib.sha1).digest()
    assert digest == base64.b64encode(mac).decode()[:4]


def test_reverse_gives_back_the_original() -> None:
    rewritten = srs.forward("alice@customer.example", our_domain=OURS, secret=SECRET, now=NOW)
    assert srs.reverse(rewritten, secret=SECRET, now=NOW) == "alice@customer.example"
    assert srs.reverse(rewritten, secret=SECRET, now=NOW + 21 * DAY) == "alice@customer.example"


def test_reverse_accepts_a_local_part_folded_to_lower_case() -> None:
    rewritten = srs.forward("alice@customer.example", our_domain=OURS, secret=SECRET, now=NOW)
    local, _, domain = rewritten.rpartition("@")
    assert srs.reverse(f"{local.lower()}@{domain}", secret=SECRET, now=NOW) == (
        "alice@customer.example"
    )


def test_null_sender_stays_null() -> None:
    assert srs.forward("", our_domain=OURS, secret=SECRET, now=NOW) == ""
    assert srs.forward("<>", our_domain=OURS, secret=SECRET, now=NOW) == "<>"


def test_refusals() -> None:
    good = srs.forward("alice@customer.example", our_domain=OURS, secret=SECRET, now=NOW)
    local, _, domain = good.rpartition("@")
    _, digest, stamp, original_domain, original_local = local.split("=")
    flipped = digest[:3] + ("A" if digest[3] != "A" else "B")
    refused = {
        "other secret": srs.reverse(good, secret=OTHER_SECRET, now=NOW),
        "too old": srs.reverse(good, secret=SECRET, now=NOW + 22 * DAY),
        "from the future": srs.reverse(good, secret=SECRET, now=NOW - DAY),
        "hash changed": srs.reverse(
            f"SRS0={flipped}={stamp}={original_domain}={original_local}@{domain}",
            secret=SECRET,
            now=NOW,
        ),
        "address changed": srs.reverse(
            f"SRS0={digest}={stamp}={original_domain}=mallory@{domain}", secret=SECRET, now=NOW
        ),
        "domain changed": srs.reverse(
            f"SRS0={digest}={stamp}=attacker.example={original_local}@{domain}",
            secret=SECRET,
            now=NOW,
        ),
        "stamp changed": srs.reverse(
            f"SRS0={digest}={srs.timestamp(NOW - DAY)}={original_domain}={original_local}@{domain}",
            secret=SECRET,
            now=NOW,
        ),
        "not srs": srs.reverse("alice@customer.example", secret=SECRET, now=NOW),
        "too few fields": srs.reverse(f"SRS0={digest}={stamp}@{domain}", secret=SECRET, now=NOW),
        "bad stamp": srs.reverse(
            f"SRS0={digest}=1!={original_domain}={original_local}@{domain}",
            secret=SECRET,
            now=NOW,
        ),
        "no at": srs.reverse("SRS0=abcd=DZ=x.example=alice", secret=SECRET, now=NOW),
    }
    assert {k: v for k, v in refused.items() if v is not None} == {}


@pytest.mark.parametrize("address", ["postmaster", "@example.org", "alice@"])
def test_an_address_without_domain_cannot_be_rewritten(address: str) -> None:
    with pytest.raises(ValueError, match="no local part and domain"):
        srs.forward(address, our_domain=OURS, secret=SECRET, now=NOW)


def test_timestamp_wraps_every_1024_days() -> None:
    assert srs.timestamp(NOW) == srs.timestamp(NOW + 1024 * DAY)
    assert srs.timestamp_age(srs.timestamp(NOW), NOW + 3 * DAY) == 3
    assert srs.timestamp_age("zz", NOW) is not None  # case-blind
    assert srs.timestamp_age("Z1", NOW) is None
    assert srs.timestamp_age("ZZZ", NOW) is None


_LOCAL = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}(\.[A-Za-z0-9=+_-]{1,10}){0,2}", fullmatch=True
)
_DOMAIN = st.from_regex(
    r"[a-z0-9]{1,20}(\.[a-z0-9-]{1,10}[a-z0-9]){0,2}\.[a-z]{2,6}", fullmatch=True
)


@given(
    local=_LOCAL,
    domain=_DOMAIN,
    now=st.floats(0, 4_000_000_000),
    age=st.integers(0, 21),
    secret=st.binary(min_size=1, max_size=64),
)
def test_round_trip(local: str, domain: str, now: float, age: int, secret: bytes) -> None:
    original = f"{local}@{domain}"
    rewritten = srs.forward(original, our_domain=OURS, secret=secret, now=now)
    assert rewritten.startswith("SRS0=") and rewritten.endswith(f"@{OURS}")
    assert srs.is_srs(rewritten)
    assert srs.reverse(rewritten, secret=secret, now=now + age * DAY) == original
    assert srs.reverse(rewritten, secret=secret + b"x", now=now) is None
    assert srs.reverse(rewritten, secret=secret, now=now + 22 * DAY) is None


@given(local=_LOCAL, domain=_DOMAIN)
def test_an_srs_address_forwarded_again_unwraps_one_level_at_a_time(
    local: str, domain: str
) -> None:
    original = f"{local}@{domain}"
    first = srs.forward(original, our_domain="fwd.example", secret=OTHER_SECRET, now=NOW)
    second = srs.forward(first, our_domain=OURS, secret=SECRET, now=NOW)
    assert srs.reverse(second, secret=SECRET, now=NOW) == first
    assert srs.reverse(first, secret=OTHER_SECRET, now=NOW) == original
