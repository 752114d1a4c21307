"""A captured message for display: decoded headers, text and HTML bodies, attachments.

Pure: bytes in, a :class:`MailView` out, with the stdlib ``email`` package
(``policy.default`` decodes RFC 2047 words and transfer encodings). A message
that is damaged still gives a view: what cannot be decoded is shown with
replacement characters rather than refused, since the mailbox is where one
looks at what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from typing import cast

from appliance.protocols.smtp_client_message import header_section


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str  # decoded, folding removed


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int  # decoded bytes
    disposition: str | None  # attachment | inline | None
    content_id: str | None


@dataclass(frozen=True, slots=True)
class MailView:
    headers: tuple[Header, ...]  # in message order, repeated fields kept
    subject: str
    text: str | None  # the text/plain body, decoded
    html: str | None  # the text/html body, decoded (untrusted: show it sandboxed)
    attachments: tuple[Attachment, ...]


def subject_of(raw: bytes) -> str:
    """The decoded Subject header, "" when there is none (reads the header section only)."""
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(header_section(raw))
    return _header_text(parsed, "Subject")


def view_of(raw: bytes) -> MailView:
    """The message as a reader sees it."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    headers = tuple(Header(name, _decoded(value)) for name, value in _items(parsed))
    text_part, html_part = parsed.get_body(("plain",)), parsed.get_body(("html",))
    bodies = {id(p) for p in (text_part, html_part) if p is not None}
    attachments = tuple(_attachment(p) for p in _leaves(parsed) if id(p) not in bodies)
    return MailView(
        headers,
        _header_text(parsed, "Subject"),
        _text(text_part),
        _text(html_part),
        attachments,
    )


def _leaves(part: Message) -> list[Message]:
    """The parts that carry content, in order; an attached message counts as one."""
    children = part.get_payload()
    if part.get_content_maintype() == "multipart" and isinstance(children, list):
        return [leaf for child in children if isinstance(child, Message) for leaf in _leaves(child)]
    return [part]


def _items(message: Message) -> list[tuple[str, object]]:
    try:
        return list(message.items())
    except Exception:  # a header the policy cannot parse: fall back to the raw values
        return list(message.raw_items())


def _decoded(value: object) -> str:
    text = str(value)
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def _header_text(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:
        return ""
    return _decoded(value) if value is not None else ""


def _text(part: Message | None) -> str | None:
    if part is None or part.get_content_maintype() != "text":
        return None
    try:
        content = cast(EmailMessage, part).get_content()
    except (LookupError, UnicodeError, ValueError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    text = content if isinstance(content, str) else str(content)
    return text.replace("\r\n", "\n")


def _attachment(part: Message) -> Attachment:
    payload = part.get_payload(decode=True)
    if payload is None and part.get_content_type() == "message/rfc822":
        payload = part.as_bytes() if hasattr(part, "as_bytes") else b""
    content_id = part.get("Content-ID")
    return Attachment(
        filename=part.get_filename(),
        content_type=part.get_content_type(),
        size=len(payload) if isinstance(payload, bytes) else 0,
        disposition=part.get_content_disposition(),
        content_id=str(content_id).strip("<> ") if content_id else None,
    )
