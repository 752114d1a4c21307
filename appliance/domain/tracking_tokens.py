"""Signed tokens in tracking links: open pixel, click redirect, unsubscribe. Pure.

A token names what it is for and carries an HMAC-SHA256 (truncated to 128
bits, base64url) over a purpose label and its content, so a token made for
one purpose never passes as another and nothing in it can be changed:

- open: ``<message id>.<mac>``;
- click: ``<message id>.<url as base64url>.<mac>``; the redirect goes only to
  the URL the token was made for (no open redirect);
- unsubscribe: ``<message id>.<mac>`` with the MAC over the message id alone
  and its own key (the form every List-Unsubscribe header already carries).

Open and click tokens use ``secrets.derive("tracking")``; unsubscribe tokens
``secrets.derive("unsubscribe-links")``. Verification is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

TRACKING_KEY_PURPOSE = "tracking"
UNSUBSCRIBE_KEY_PURPOSE = "unsubscribe-links"
MAX_URL_LENGTH = 4096  # longer links are left as they are (not tracked)

_MAC_BYTES = 16
_MESSAGE_ID_RE = re.compile(r"^[a-z]{2,8}_[0-9a-z]{10,40}$")
_OPEN = b"open\0"
_CLICK = b"click\0"


class InvalidToken(ValueError):
    """The token was not made by this appliance for this purpose, or was changed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("token is not base64url") from exc


def _mac(secret: bytes, data: bytes) -> str:
    return _b64(hmac.new(secret, data, hashlib.sha256).digest()[:_MAC_BYTES])


def _check(secret: bytes, data: bytes, mac: str) -> None:
    if not hmac.compare_digest(_mac(secret, data).encode(), mac.encode("ascii", "replace")):
        raise InvalidToken("token signature does not match")


def _message_id(text: str) -> str:
    if not _MESSAGE_ID_RE.match(text):
        raise InvalidToken("token does not name a message")
    return text


def open_token(secret: bytes, message_id: str) -> str:
    return f"{message_id}.{_mac(secret, _OPEN + message_id.encode())}"


def verify_open_token(secret: bytes, token: str) -> str:
    """The message id the open token was made for; raises InvalidToken."""
    message_id, sep, mac = token.partition(".")
    if not sep or "." in mac:
        raise InvalidToken("malformed open token")
    _check(secret, _OPEN + message_id.encode(), mac)
    return _message_id(message_id)


def click_token(secret: bytes, message_id: str, url: str) -> str:
    data = _CLICK + message_id.encode() + b"\0" + url.encode()
    return f"{message_id}.{_b64(url.encode())}.{_mac(secret, data)}"


def verify_click_token(secret: bytes, token: str) -> tuple[str, str]:
    """(message id, URL) of a click token; raises InvalidToken."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed click token")
    message_id, encoded, mac = parts
    raw = _unb64(encoded)
    _check(secret, _CLICK + message_id.encode() + b"\0" + raw, mac)
    try:
        url = raw.decode()
    except UnicodeDecodeError as exc:  # pragma: no cover - signed by us, so UTF-8
        raise InvalidToken("click token URL is not UTF-8") from exc
    if not is_trackable_url(url):
        raise InvalidToken("click token URL is not http(s)")
    return _message_id(message_id), url


def unsubscribe_token(secret: bytes, message_id: str) -> str:
    mac = hmac.new(secret, message_id.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{message_id}.{_b64(mac)}"


def verify_unsubscribe_token(secret: bytes, token: str) -> str:
    """The message id an unsubscribe token was made for; raises InvalidToken."""
    message_id, sep, mac = token.partition(".")
    if not sep or "." in mac:
        raise InvalidToken("malformed unsubscribe token")
    _check(secret, message_id.encode(), mac)
    return _message_id(message_id)


def is_trackable_url(url: str) -> bool:
    """Absolute http(s) URLs of sane length, without spaces or control characters."""
    lowered = url[:8].lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return False
    if len(url) > MAX_URL_LENGTH or len(url) <= len("https://"):
        return False
    return not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url)
