"""Public identifiers: a type prefix and a time-ordered random part.

``msg_01j9…``: 48 bits of milliseconds then 80 random bits in Crockford
base32 (26 characters, as ULID), so ids sort by creation time, which keeps
the primary-key index of a table of millions of rows append-mostly.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

PREFIXES = frozenset(
    {
        "tnt",
        "usr",
        "msg",
        "evt",
        "req",
        "dom",
        "whk",
        "tpl",
        "ver",
        "sup",
        "pool",
        "rly",
        "role",
        "rpt",
    }
)


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, *, now: float | None = None) -> str:
    """A new id such as ``msg_01jab3…``; ``prefix`` must be a known type."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{_base32(value, 26)}"


def request_id() -> str:
    """An id for one HTTP request or SMTP session, for logs (not stored)."""
    return secrets.token_hex(8)
