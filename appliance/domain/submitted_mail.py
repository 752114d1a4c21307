"""A message submitted over SMTP, as the SendGrid v3 mail/send body it stands for: pure.

:func:`submission_body` turns the RFC 5322 message and its envelope into the
JSON value :func:`~appliance.domain.send_validation.parse_send_request`
takes, so submitted mail goes through the API's rules and pipeline:

- ``from``: the first From mailbox (the envelope sender when there is no
  From header); ``reply_to`` / ``reply_to_list`` from Reply-To; ``subject``
  decoded (RFC 2047).
- ``content``: the first text/plain, text/x-amp-html and text/html parts
  that are not attachments (later ones of the same type are appended).
  Every other part is an attachment (base64, filename, type); a part with a
  Content-ID inside multipart/related, or not marked ``attachment``, is
  ``inline`` with that ``content_id``; an attached message/rfc822 is kept whole. Empty
  attachments are left out (SendGrid requires content).
- ``personalizations``: one. Header To addresses that are envelope
  recipients are ``to``, header Cc ones ``cc``, the other envelope
  recipients ``bcc``; with no ``to`` the first envelope recipient is moved
  there (SendGrid needs one). Header addresses that are not envelope
  recipients get no mail, as in SMTP.
- ``headers``: the rest, except the structural ones (:data:`DROPPED_HEADERS`,
  ``Content-*``, ``Resent-*``, ``ARC-*``); Message-ID and Date are the
  composer's at delivery.
- SendGrid's ``X-SMTPAPI`` JSON header: ``category``, ``unique_args``
  (→ ``custom_args``), ``send_at``, ``asm_group_id``, ``ip_pool``; other
  keys (``to``, ``sub``, ``section``, ``filters``) are ignored.

Anything that cannot be turned into a body raises :class:`SubmittedMailError`
whose text says what to change (answered ``550 5.6.0``).
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Iterable, Sequence
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses
from typing import Any, Final

from appliance.domain.email_address import InvalidAddressError, parse_address

DROPPED_HEADERS: Final = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "message-id",
        "date",
        "mime-version",
        "received",
        "received-spf",
        "return-path",
        "delivered-to",
        "envelope-to",
        "x-original-to",
        "dkim-signature",
        "domainkey-signature",
        "x-google-dkim-signature",
        "authentication-results",
        "x-smtpapi",
        "x-postyard-message-id",
    }
)
"""Headers (lower case) that describe transport or structure, not content: not kept."""
_DROPPED_PREFIXES: Final = ("content-", "resent-", "arc-", "x-sg-")
_BODY_TYPES: Final = ("text/plain", "text/x-amp-html", "text/html")
_PARSER: Final = BytesParser(policy=policy.default)
_RAW_HEADER_PARSER: Final = BytesHeaderParser(policy=policy.compat32)


class SubmittedMailError(ValueError):
    """The submitted message cannot be sent as it is; the text says what to change."""


def submission_body(data: bytes, *, mail_from: str, recipients: Sequence[str]) -> dict[str, Any]:
    """The mail/send body for ``data`` sent with MAIL FROM ``mail_from`` to ``recipients``."""
    envelope = _envelope(recipients)
    try:
        message = _PARSER.parsebytes(data)
        raw_headers = _RAW_HEADER_PARSER.parsebytes(data)
        return _Converter(message, raw_headers, envelope, mail_from).body()
    except SubmittedMailError:
        raise
    except Exception as exc:  # the email package's parsers raise assorted errors on bad input
        raise SubmittedMailError(
            f"the message cannot be parsed as RFC 5322/MIME ({type(exc).__name__}: {exc}); "
            "check its headers and MIME structure"
        ) from exc


def _envelope(recipients: Sequence[str]) -> dict[str, str]:
    """Envelope recipients in order, by case-blind key, in normal form."""
    envelope: dict[str, str] = {}
    for text in recipients:
        try:
            address = parse_address(text)
        except InvalidAddressError as exc:
            raise SubmittedMailError(f"recipient {exc}") from None
        envelope.setdefault(address.key, str(address))
    if not envelope:
        raise SubmittedMailError("the message has no recipients: give at least one RCPT TO")
    return envelope


def clean_text(text: str) -> str:
    """Header text as JSON can carry it: raw 8-bit bytes decoded as UTF-8 (bad
    bytes replaced), and CR, LF and NUL, which would start new header lines, as spaces."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
    decoded = raw.decode("utf-8", "replace")
    return decoded.replace("\r\n", " ").translate({0: " ", 10: " ", 13: " "})


class _Converter:
    def __init__(
        self,
        message: EmailMessage,
        raw_headers: Message,
        envelope: dict[str, str],
        mail_from: str,
    ) -> None:
        self.message = message
        self.raw_headers = raw_headers
        self.envelope = envelope
        self.mail_from = mail_from
        self.content: dict[str, list[str]] = {}
        self.attachments: list[dict[str, str]] = []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "personalizations": [self.personalization()],
            "from": self.sender(),
            "subject": self.subject(),
        }
        reply_to = self.mailboxes("Reply-To")
        if len(reply_to) == 1:
            body["reply_to"] = reply_to[0][1]
        elif reply_to:
            body["reply_to_list"] = [m for _, m in reply_to]
        self.walk(self.message)
        body["content"] = self.content_blocks()
        if self.attachments:
            body["attachments"] = self.attachments
        headers = self.custom_headers()
        if headers:
            body["headers"] = headers
        body.update(self.smtpapi())
        return body

    # --- addresses ---------------------------------------------------------

    def mailboxes(self, header: str) -> list[tuple[str, dict[str, str]]]:
        """(key, {"email", "name"}) of every valid address in every ``header`` field."""
        found: list[tuple[str, dict[str, str]]] = []
        for name, addr in self.addresses(header):
            try:
                address = parse_address(addr)
            except InvalidAddressError:
                continue
            mailbox = {"email": str(address)}
            name = clean_text(name).strip()
            if name:
                mailbox["name"] = name
            found.append((address.key, mailbox))
        return found

    def addresses(self, header: str) -> Iterable[tuple[str, str]]:
        """(display name, addr-spec) pairs; names decoded here because the structured
        parser puts a space between adjacent encoded words of a long display name."""
        values = self.raw_headers.get_all(header) or []
        for name, addr in getaddresses([str(v) for v in values]):
            yield _decode_words(name), addr

    def sender(self) -> dict[str, str]:
        values = self.message.get_all("From") or ()
        if values:
            mailboxes = self.mailboxes("From")
            if not mailboxes:
                shown = clean_text(str(values[0]))[:200]
                raise SubmittedMailError(
                    f"the From header {shown!r} holds no valid address: write it as "
                    "Name <user@example.com>"
                )
            return mailboxes[0][1]
        if not self.mail_from:
            raise SubmittedMailError(
                "the message has no From header and the envelope sender is empty: add a From header"
            )
        try:
            return {"email": str(parse_address(self.mail_from))}
        except InvalidAddressError as exc:
            raise SubmittedMailError(f"envelope sender {exc}") from None

    def personalization(self) -> dict[str, Any]:
        remaining = dict(self.envelope)
        lists: dict[str, list[dict[str, str]]] = {"to": [], "cc": []}
        for kind, header in (("to", "To"), ("cc", "Cc")):
            for key, mailbox in self.mailboxes(header):
                if key in remaining:
                    del remaining[key]
                    lists[kind].append(mailbox)
        bcc = [{"email": email} for email in remaining.values()]
        if not lists["to"]:
            first = next(iter(self.envelope))
            for group in (lists["cc"], bcc):
                moved = [m for m in group if parse_address(m["email"]).key == first]
                if moved:
                    group.remove(moved[0])
                    lists["to"].append(moved[0])
        personalization: dict[str, Any] = {"to": lists["to"]}
        if lists["cc"]:
            personalization["cc"] = lists["cc"]
        if bcc:
            personalization["bcc"] = bcc
        return personalization

    # --- subject and headers -----------------------------------------------

    def subject(self) -> str:
        value = self.message.get("Subject")
        subject = clean_text(str(value)).strip() if value is not None else ""
        if not subject:
            raise SubmittedMailError("the message has no Subject (or an empty one): add a subject")
        return subject

    def custom_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        seen: set[str] = set()
        for name, value in self.message.items():
            key = name.lower()
            if (
                key in DROPPED_HEADERS
                or key.startswith(_DROPPED_PREFIXES)
                or key in seen
                or not name
                or not all(33 <= ord(c) <= 126 and c != ":" for c in name)
            ):
                continue
            seen.add(key)
            headers[name] = clean_text(str(value)).strip()
        return headers

    def smtpapi(self) -> dict[str, Any]:
        """The body fields SendGrid's ``X-SMTPAPI`` header sets."""
        value = self.message.get("X-SMTPAPI")
        if value is None:
            return {}
        try:
            api = json.loads(clean_text(str(value)))
        except ValueError as exc:
            raise SubmittedMailError(f"the X-SMTPAPI header is not valid JSON ({exc})") from None
        if not isinstance(api, dict):
            raise SubmittedMailError("the X-SMTPAPI header must be a JSON object")
        fields: dict[str, Any] = {}
        category = api.get("category")
        if category is not None:
            categories = [category] if isinstance(category, str) else category
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise SubmittedMailError("X-SMTPAPI category must be a string or a list of strings")
            fields["categories"] = categories
        unique_args = api.get("unique_args")
        if unique_args is not None:
            fields["custom_args"] = _unique_args(unique_args)
        for key, field, kind in (
            ("send_at", "send_at", int),
            ("asm_group_id", "asm", int),
            ("ip_pool", "ip_pool_name", str),
        ):
            given = api.get(key)
            if given is None:
                continue
            if not isinstance(given, kind) or isinstance(given, bool):
                raise SubmittedMailError(f"X-SMTPAPI {key} must be a JSON {kind.__name__}")
            fields[field] = {"group_id": given} if field == "asm" else given
        return fields

    # --- MIME parts --------------------------------------------------------

    def walk(self, part: Message, *, related: bool = False) -> None:
        if part.get_content_type() == "message/rfc822":
            self.attach(part, _attached_message(part), "message.eml", related=related)
        elif part.is_multipart():
            related = part.get_content_type() == "multipart/related"
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    self.walk(sub, related=related)
        else:
            content_type = part.get_content_type()
            disposition = part.get_content_disposition()
            if (
                content_type in _BODY_TYPES
                and disposition != "attachment"
                and not part.get_filename()
            ):
                text = _text(part)
                if text.strip():
                    self.content.setdefault(content_type, []).append(text)
            else:
                payload = part.get_payload(decode=True)
                content = payload if isinstance(payload, bytes) else b""
                self.attach(part, content, None, related=related)

    def attach(
        self, part: Message, content: bytes, default_name: str | None, *, related: bool
    ) -> None:
        if not content:
            return
        content_type = part.get_content_type()
        filename = clean_text(part.get_filename() or "").strip()
        if not filename:
            number = len(self.attachments) + 1
            extension = mimetypes.guess_extension(content_type) or ".bin"
            filename = default_name or f"attachment-{number}{extension}"
        attachment = {
            "content": base64.b64encode(content).decode("ascii"),
            "filename": filename,
            "type": content_type,
            "disposition": "attachment",
        }
        content_id = clean_text(str(part.get("Content-ID", ""))).strip().strip("<>").strip()
        if content_id and (related or part.get_content_disposition() != "attachment"):
            attachment["disposition"] = "inline"
            attachment["content_id"] = content_id
        self.attachments.append(attachment)

    def content_blocks(self) -> list[dict[str, str]]:
        blocks = [
            {"type": t, "value": "\n".join(self.content[t])}
            for t in _BODY_TYPES
            if t in self.content
        ]
        # SendGrid needs a content block; a message of attachments only gets an empty-looking one.
        return blocks or [{"type": "text/plain", "value": " "}]


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"  # a superset; 8-bit text mislabelled as ASCII is usually UTF-8
    try:
        text = raw.decode(charset, "replace")
    except LookupError:
        text = raw.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded (whitespace between adjacent ones dropped)."""
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError):  # unknown charset, bad encoding
        return text


def _attached_message(part: Message) -> bytes:
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        return inner[0].as_bytes(policy=policy.SMTP)
    return b""


def _unique_args(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SubmittedMailError("X-SMTPAPI unique_args must be a JSON object")
    args: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            args[key] = value
        elif isinstance(value, bool):
            args[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            args[key] = json.dumps(value)
        else:
            raise SubmittedMailError(f"X-SMTPAPI unique_args {key!r} must be a string or a number")
    return args
