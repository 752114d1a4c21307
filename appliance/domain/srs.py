"""Sender Rewriting Scheme (Shevek's SRS, as in libsrs2 and Mail::SRS): pure, no I/O.

A forwarder that relays ``alice@customer.example``'s mail with her address as
the envelope sender breaks SPF: our addresses are not in customer.example's
record. So the envelope sender is rewritten to an address at our own domain
that encodes hers, and can be turned back when a bounce comes to it::

    SRS0=<hash>=<timestamp>=<original domain>=<original local part>@<our domain>

- ``timestamp``: the day (Unix time // 86 400) modulo 1 024, as two base32
  characters (alphabet ``A-Z2-7``, high digit first);
- ``hash``: the first 4 characters of the base64 HMAC-SHA1, keyed by our
  secret, of the lower-cased timestamp, domain and local part. Nobody else can
  make an address that :func:`reverse` accepts, so a bounce address cannot be
  used to relay mail to arbitrary people.

:func:`reverse` accepts the hash in any letter case (some MTAs fold local
parts to lower case; Mail::SRS does the same) and refuses addresses older
than ``max_age_days`` (21, as libsrs2) or dated in the future.

Only SRS0 is made: an original sender that is itself an SRS0 address (mail
from another forwarder) is wrapped once more rather than turned into SRS1,
which costs a longer local part and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

PREFIX: Final = "SRS0"
SEPARATOR: Final = "="
HASH_LENGTH: Final = 4
DAY_SECONDS: Final = 86_400
TIMESTAMP_SLOTS: Final = 1 << 10  # two base32 characters
DEFAULT_MAX_AGE_DAYS: Final = 21
_BASE32: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SRS0_RE: Final = re.compile(r"SRS0[=+-]", re.IGNORECASE)
NULL_SENDERS: Final = frozenset({"", "<>"})


def is_srs(address: str) -> bool:
    """Whether the local part of ``address`` starts like an SRS0 address."""
    return _SRS0_RE.match(address) is not None


def forward(address: str, *, our_domain: str, secret: bytes, now: float) -> str:
    """The SRS0 address at ``our_domain`` standing for ``address``.

    The null sender (``""`` or ``"<>"``) is returned as it is: a bounce is
    never answered, so it needs no return address. Raises ValueError for an
    address without ``@`` (nothing to return a bounce to).
    """
    if address in NULL_SENDERS:
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{address!r} has no local part and domain to rewrite")
    stamp = timestamp(now)
    digest = _hash(secret, stamp, domain, local)
    fields = (PREFIX, digest, stamp, domain, local)
    return f"{SEPARATOR.join(fields)}@{our_domain}"


def reverse(
    address: str, *, secret: bytes, now: float, max_age_days: int = DEFAULT_MAX_AGE_DAYS
) -> str | None:
    """The original address encoded in an SRS0 ``address``; None when it is not ours
    (not SRS0, a hash we did not make, or a timestamp older than ``max_age_days``)."""
    local, at, _ = address.rpartition("@")
    if not at or _SRS0_RE.match(local) is None:
        return None
    parts = local[len(PREFIX) + 1 :].split(SEPARATOR, 3)
    if len(parts) != 4:
        return None
    digest, stamp, domain, original_local = parts
    if not domain or not original_local or len(digest) != HASH_LENGTH:
        return None
    age = timestamp_age(stamp, now)
    if age is None or age > max_age_days:
        return None
    expected = _hash(secret, stamp, domain, original_local)
    # Some MTAs fold local parts to lower case: the hash is compared in any case.
    if not hmac.compare_digest(expected.lower().encode(), digest.lower().encode()):
        return None
    return f"{original_local}@{domain}"


def timestamp(now: float) -> str:
    """The two-character base32 day stamp of ``now`` (Unix seconds)."""
    day = int(now // DAY_SECONDS) % TIMESTAMP_SLOTS
    return _BASE32[day >> 5] + _BASE32[day & 31]


def timestamp_age(stamp: str, now: float) -> int | None:
    """Days from ``stamp`` to ``now`` (modulo 1 024 days); None if it is no stamp."""
    if len(stamp) != 2:
        return None
    high, low = (_BASE32.find(c) for c in stamp.upper())
    if high < 0 or low < 0:
        return None
    then = high * 32 + low
    today = int(now // DAY_SECONDS) % TIMESTAMP_SLOTS
    return (today - then) % TIMESTAMP_SLOTS


def _hash(secret: bytes, *fields: str) -> str:
    mac = hmac.new(secret, digestmod=hashlib.sha1)
    for field in fields:
        mac.update(field.lower().encode("utf-8"))
    return base64.b64encode(mac.digest()).decode("ascii")[:HASH_LENGTH]
