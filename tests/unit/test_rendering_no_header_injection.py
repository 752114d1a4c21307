"""The composer's path from a mail/send body to MIME, for any text: no header injected.

``parse_send_request`` then ``render_message`` (what the composer runs at
delivery): a body whose names, subjects or header values hold CR, LF or NUL
is refused by validation naming the field; categories and custom_args never
reach the headers; a substitution that puts a line break into the subject
fails the render (the message is failed) rather than adding a header line.
Anything else renders to a message with exactly its own headers, once each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from appliance.domain.rendering import RenderTarget, render_message
from appliance.domain.send_errors import SendValidationError
from appliance.domain.send_validation import parse_send_request

T = TypeVar("T")
NOW = datetime(2024, 4, 23, 12, 0, tzinfo=UTC)
TARGET = RenderTarget("msg_01HXYZ", 0, "ana@example.org", NOW, "https://p.example/t/u/tok")
BREAKS = "\r\n\0"
_TEXT = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=10),
        st.sampled_from(["\r\n", "\n", "\r", "\0", "\r\nBcc: victim@example.net", "-sub-"]),
    ),
    max_size=5,
).map("".join)
_CLEAN = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters=BREAKS), max_size=10),
        st.just("-sub-"),
    ),
    max_size=4,
).map("".join)
_FIELD = st.one_of(_CLEAN, _CLEAN, _CLEAN, _TEXT)  # mostly clean, so that most bodies render
_ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), min_size=1, max_size=20)


def outcome(make: Callable[[], T]) -> T | ValueError:
    """The value, or the ValueError (SendValidationError is one) it was refused with."""
    try:
        return make()
    except ValueError as exc:
        return exc


def broken(*values: str) -> bool:
    return any(c in v for v in values for c in BREAKS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_FIELD,
    from_name=_FIELD,
    to_name=_FIELD,
    header_value=_FIELD,
    substitution=_TEXT,
    categories=st.lists(_ASCII, max_size=3, unique=True),
    custom_args=st.dictionaries(_TEXT.filter(bool), _TEXT, max_size=3),
)
def test_any_request_text_renders_without_injected_headers(
    subject: str,
    from_name: str,
    to_name: str,
    header_value: str,
    substitution: str,
    categories: list[str],
    custom_args: dict[str, str],
) -> None:
    body: dict[str, Any] = {
        "personalizations": [
            {
                "to": [{"email": "ana@example.org", "name": to_name}],
                "substitutions": {"-sub-": substitution},
                "headers": {"X-Order": header_value},
            }
        ],
        "from": {"email": "news@example.com", "name": from_name},
        "subject": subject or "s",
        "content": [{"type": "text/plain", "value": "Hi -sub-"}],
        "categories": categories,
        "custom_args": custom_args or {"k": "v"},
    }
    request = outcome(lambda: parse_send_request(body, now=NOW))
    if isinstance(request, SendValidationError):
        fields = {e.field for e in request.errors}
        assert fields <= {
            "subject",
            "from.name",
            "personalizations.0.to.0.name",
            "personalizations.0.headers.X-Order",
        }, request.errors
        assert broken(subject, from_name, to_name, header_value)
        event("refused by validation")
        return
    assert not isinstance(request, Exception), request
    assert not broken(subject, from_name.strip(), to_name.strip(), header_value)
    raw = outcome(lambda: render_message(request, TARGET, None))
    if isinstance(raw, ValueError):  # the composer fails the message with this sentence
        assert "-sub-" in subject and broken(substitution), raw
        assert "'Subject' contains a line break" in str(raw)
        event("render failed")
        return
    assert isinstance(raw, bytes), raw
    event("rendered")
    msg = message_from_bytes(raw, policy=policy.default)
    counts = Counter(name.lower() for name in msg)
    assert set(counts.values()) == {1}, counts
    assert set(counts) == {
        "from", "to", "subject", "date", "message-id", "mime-version", "x-postyard-message-id",
        "list-unsubscribe", "list-unsubscribe-post", "x-order", "content-type",
        "content-transfer-encoding",
    }  # fmt: skip
    assert msg["X-Order"] == header_value.strip(" \t")
