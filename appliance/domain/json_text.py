"""JSON request bodies as Unicode text: strict UTF-8, no unpaired surrogates. Pure.

``json.loads(bytes)`` decodes with ``surrogatepass``, so the bytes of an
encoded surrogate (``ED A0 80``) slip through, and a ``"\\ud800"`` escape is
valid JSON either way. Such strings are no Unicode text: they cannot be
stored, encoded into a header or sent, and every later step would fail with
an internal error. They are refused here, naming the field.
"""

from __future__ import annotations

import json

NOT_UNICODE = (
    "The value must be valid UTF-8 text: it holds an unpaired surrogate escape (such as "
    "\\ud800), which no character encoding can represent."
)


def loads_utf8(raw: bytes) -> object:
    """``json.loads`` of a strictly decoded body (raises UnicodeDecodeError, JSONDecodeError)."""
    return json.loads(raw.decode(json.detect_encoding(raw)))


def lone_surrogate_field(value: object, path: str = "") -> str | None:
    """The dotted path of the first string (value or object key) with an unpaired
    surrogate, ``""`` for the top level; None when there is none."""
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            at = f"{path}.{key}" if path else str(key)
            if _has_surrogate(key):
                return path or at
            found = lone_surrogate_field(item, at)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate_field(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
