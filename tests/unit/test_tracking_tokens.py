"""Tracking tokens: round trips, tampering, and no token passes for another purpose."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.domain.ids import new_id
from appliance.domain.tracking_tokens import (
    InvalidToken,
    click_token,
    is_trackable_url,
    open_token,
    unsubscribe_token,
    verify_click_token,
    verify_open_token,
    verify_unsubscribe_token,
)

SECRET = b"k" * 32
OTHER = b"o" * 32
URL = "https://shop.example.com/p?id=1&utm=a#top"


def _flip(token: str, index: int) -> str:
    ch = token[index]
    return token[:index] + ("A" if ch != "A" else "B") + token[index + 1 :]


def test_open_token_round_trip_and_is_compact() -> None:
    message_id = new_id("msg")
    token = open_token(SECRET, message_id)
    assert verify_open_token(SECRET, token) == message_id
    assert len(token) < 60 and "/" not in token and "=" not in token


def test_click_token_returns_exactly_the_signed_url() -> None:
    message_id = new_id("msg")
    token = click_token(SECRET, message_id, URL)
    assert verify_click_token(SECRET, token) == (message_id, URL)


def test_unsubscribe_token_round_trip() -> None:
    message_id = new_id("msg")
    token = unsubscribe_token(SECRET, message_id)
    assert verify_unsubscribe_token(SECRET, token) == message_id


@pytest.mark.parametrize("index", [0, 5, -1, -5])
def test_tampered_tokens_are_refused(index: int) -> None:
    message_id = new_id("msg")
    cases: list[tuple[str, Callable[[bytes, str], object]]] = [
        (open_token(SECRET, message_id), verify_open_token),
        (click_token(SECRET, message_id, URL), verify_click_token),
        (unsubscribe_token(SECRET, message_id), verify_unsubscribe_token),
    ]
    for token, verify in cases:
        with pytest.raises(InvalidToken):
            verify(SECRET, _flip(token, index))
        with pytest.raises(InvalidToken):
            verify(OTHER, token)


def test_click_token_cannot_be_pointed_at_another_url() -> None:
    """Guards against an open redirect: the URL part is covered by the signature."""
    message_id = new_id("msg")
    token = click_token(SECRET, message_id, URL)
    mid, _, mac = token.split(".")
    evil = click_token(OTHER, message_id, "https://evil.example/").split(".")[1]
    with pytest.raises(InvalidToken):
        verify_click_token(SECRET, f"{mid}.{evil}.{mac}")
    other_message = new_id("msg")
    with pytest.raises(InvalidToken):
        verify_click_token(SECRET, f"{other_message}.{token.split('.', 1)[1]}")


def test_a_token_of_one_purpose_is_not_valid_for_another() -> None:
    message_id = new_id("msg")
    with pytest.raises(InvalidToken):
        verify_open_token(SECRET, unsubscribe_token(SECRET, message_id))
    with pytest.raises(InvalidToken):
        verify_unsubscribe_token(SECRET, open_token(SECRET, message_id))
    with pytest.raises(InvalidToken):
        verify_open_token(SECRET, click_token(SECRET, message_id, URL))


@pytest.mark.parametrize("token", ["", ".", "..", "a.b.c.d", "msg_x.", "msg_1.%%%.x", "é.é"])
def test_malformed_tokens_are_refused(token: str) -> None:
    for verify in (verify_open_token, verify_click_token, verify_unsubscribe_token):
        with pytest.raises(InvalidToken):
            verify(SECRET, token)


def test_signed_non_http_url_is_still_refused() -> None:
    token = click_token(SECRET, new_id("msg"), "javascript:alert(1)")
    with pytest.raises(InvalidToken):
        verify_click_token(SECRET, token)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://a.example/x", True),
        ("HTTP://A.EXAMPLE", True),
        ("mailto:a@example.com", False),
        ("#top", False),
        ("/relative", False),
        ("javascript:alert(1)", False),
        ("https://a.example/with space", False),
        ("https://", False),
    ],
)
def test_trackable_urls(url: str, ok: bool) -> None:
    assert is_trackable_url(url) is ok
