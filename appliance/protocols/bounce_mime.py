"""MIME plumbing for bounce reports: decoded text, report parts, the returned original.

Everything here tolerates broken input: unknown charsets, bad transfer
encodings and missing boundaries degrade to best-effort text, never raise.
"""

from __future__ import annotations

import email
import html
import re
from collections.abc import Iterator
from email import policy
from email.message import Message
from typing import Final

_RETURNED_TYPES: Final = frozenset({"message/rfc822", "message/global", "text/rfc822-headers"})
_TAG_RE: Final = re.compile(r"<(?:br|p|div|tr|li|/p|/div|/tr|/li)\b[^>]*>", re.IGNORECASE)
_ANY_TAG_RE: Final = re.compile(r"<[^>]+>")
_HEADER_LINE_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")


def load(raw: bytes) -> Message:
    """Parse a message leniently (compat32 keeps broken headers as they came)."""
    return email.message_from_bytes(raw, policy=policy.compat32)


def header(msg: Message, name: str) -> str:
    """A header as text, decoded where it is RFC 2047 encoded; ``""`` when absent."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        parts = email.header.decode_header(str(value))
        return "".join(
            p.decode(c or "utf-8", "replace") if isinstance(p, bytes) else p for p, c in parts
        )
    except (LookupError, ValueError, TypeError):
        return str(value)


def headers_text(msg: Message) -> str:
    """Fields of a (sub)message, one ``Name: value`` line each."""
    return "\n".join(f"{name}: {value}" for name, value in msg.items())


def _decode(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def html_to_text(text: str) -> str:
    return html.unescape(_ANY_TAG_RE.sub("", _TAG_RE.sub("\n", text)))


def payload(msg: Message) -> list[Message] | str:
    """``get_payload()`` that survives charset parameters the stdlib chokes on."""
    try:
        value = msg.get_payload()
    except (LookupError, ValueError):
        return ""
    if isinstance(value, list):
        return [m for m in value if isinstance(m, Message)]
    return value if isinstance(value, str) else ""


def part_text(part: Message) -> str:
    """The text of a leaf part, or the fields of a ``message/*`` status part."""
    body = payload(part)
    if isinstance(body, list):
        blocks = [headers_text(sub) for sub in body]
        tails = [payload(sub) for sub in body]
        texts = [
            b + ("\n" + t if isinstance(t, str) and t.strip() else "")
            for b, t in zip(blocks, tails, strict=True)
        ]
        return "\n\n".join(texts)
    try:
        data = part.get_payload(decode=True)
    except (LookupError, ValueError):  # a charset parameter the stdlib cannot even look up
        data = None
    if not isinstance(data, bytes):
        return body if isinstance(body, str) else ""
    try:
        charset = part.get_content_charset()
    except (LookupError, ValueError):
        charset = None
    text = _decode(data, charset)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text


def report_parts(msg: Message) -> Iterator[Message]:
    """Leaf parts of the report itself, not descending into the returned original."""
    if msg.get_content_type() in _RETURNED_TYPES:
        return
    body = payload(msg)
    if msg.get_content_maintype() == "multipart" and isinstance(body, list):
        for sub in body:
            yield from report_parts(sub)
    else:
        yield msg


def returned_original(msg: Message) -> Message | None:
    """The headers (and maybe body) of the returned message, when attached as a part."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if part is msg or ctype not in _RETURNED_TYPES:
            continue
        body = payload(part)
        if isinstance(body, list):
            inner = next(iter(body), None)
            if inner is not None and len(inner.keys()) > 0:
                return inner
            continue
        text = part_text(part)
        if text.strip():
            parsed = email.message_from_string(text.lstrip(), policy=policy.compat32)
            if len(parsed.keys()) > 0:
                return parsed
    return None


def inline_header(text: str, name: str) -> str | None:
    """The first ``Name: value`` line in free text (a returned original pasted inline)."""
    pattern = re.compile(rf"^[ \t>]*{re.escape(name)}:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE)
    m = pattern.search(text)
    return m.group(1).strip() if m else None


def is_header_line(line: str) -> bool:
    return _HEADER_LINE_RE.match(line) is not None
