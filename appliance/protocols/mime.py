"""The RFC 5322 / MIME message a delivery sends, built from a ``MessageSpec``.

Pure: a frozen spec in, bytes out (CRLF line endings, no line over 998
octets). Structure, outermost first, only as deep as the content needs::

    multipart/mixed                      when there are regular attachments
      multipart/alternative              when there is more than one body
        text/plain                       (first, as RFC 2046 and SendGrid order it)
        text/x-amp-html
        multipart/related                when inline parts carry a Content-ID
          text/html
          image/png  Content-ID: <logo>
      application/pdf  Content-Disposition: attachment

Text bodies are 7bit when they are ASCII with short lines, otherwise
quoted-printable (or base64 when that is shorter, as for most non-Latin
scripts); attachments are base64. Non-ASCII header text and display names
are RFC 2047 encoded words, non-ASCII attachment names RFC 2231 parameters,
non-ASCII domains IDNA A-labels. A local part must be ASCII: SMTPUTF8 is not
supported here.

Every string that ends up in a header is checked for CR, LF and NUL, and a
``ValueError`` names the header: user input never adds header lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from enum import Enum

import idna

# Headers SendGrid refuses in a request's ``headers`` ("may not override";
# docs, sendgrid-compat.md §2.2), lower-cased.
FORBIDDEN_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
# Headers Postyard itself depends on (bounce matching, MIME parsing); a request
# may not set them either. The API should refuse both sets with a 400.
RESERVED_HEADERS = frozenset({"x-postyard-message-id", "mime-version"})

MAX_LINE = 998  # RFC 5322 §2.1.1, excluding CRLF
FOLD_AT = 78  # RFC 5322 §2.1.1 "SHOULD"
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1

# cte_type="7bit": never rely on the peer offering 8BITMIME.
# refold_source="none": headers we fold ourselves (set_raw) are written as is.
_POLICY = email_policy.SMTP.clone(cte_type="7bit", refold_source="none")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_PLAIN_TEXT = re.compile(r"[\x20-\x7e\t]*")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_MIME_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 2045 token
_MIME_TYPE = re.compile(rf"({_MIME_TOKEN})/({_MIME_TOKEN})")
_URI = re.compile(r"[!-~]+")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


class Disposition(Enum):
    ATTACHMENT = "attachment"
    INLINE = "inline"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """``name <email>``; ``email`` is an addr-spec the API already validated."""

    email: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    type: str = "application/octet-stream"
    disposition: Disposition = Disposition.ATTACHMENT
    content_id: str | None = None  # without angle brackets, as SendGrid takes it


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """Everything the message needs, already rendered (templates, tracking)."""

    from_: Mailbox
    to: tuple[Mailbox, ...]
    subject: str
    postyard_message_id: str
    message_id_domain: str
    date: datetime
    cc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    text: str | None = None
    html: str | None = None
    amp_html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # the request's custom headers, in order
    list_unsubscribe_urls: tuple[str, ...] = ()
    list_unsubscribe_mailto: str | None = None  # "unsub@host" or "mailto:unsub@host?…"

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("a message needs at least one To address")
        if self.date.tzinfo is None or self.date.utcoffset() is None:
            raise ValueError("MessageSpec.date must be timezone-aware")


def build_message(spec: MessageSpec) -> bytes:
    """The complete message, ready for DKIM signing and SMTP ``DATA``."""
    msg = EmailMessage(policy=_POLICY)
    _address_header(msg, "From", (spec.from_,))
    _address_header(msg, "To", spec.to)
    if spec.cc:
        _address_header(msg, "Cc", spec.cc)
    if spec.reply_to:
        _address_header(msg, "Reply-To", spec.reply_to)
    for name, value in _unstructured_headers(spec):
        msg.set_raw(name, _fold(name, value))
    body = _body(spec)
    for name, value in body.items():
        msg[name] = value
    msg.set_payload(body.get_payload())
    return msg.as_bytes(policy=_POLICY)


# ---------------------------------------------------------------- headers


def _unstructured_headers(spec: MessageSpec) -> list[tuple[str, str]]:
    _check("Subject", spec.subject)
    message_id = _message_id(spec.postyard_message_id, spec.message_id_domain)
    defaults: list[tuple[str, str]] = [
        ("Subject", spec.subject.strip(" \t")),
        ("Date", format_datetime(spec.date)),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("X-Postyard-Message-Id", spec.postyard_message_id),
    ]
    unsubscribe = _list_unsubscribe(spec)
    if unsubscribe:
        defaults.append(("List-Unsubscribe", unsubscribe))
        if any(u.lower().startswith("https://") for u in spec.list_unsubscribe_urls):
            defaults.append(("List-Unsubscribe-Post", ONE_CLICK))
    custom = _custom_headers(spec.headers)
    overridden = {name.lower() for name, _ in custom}
    if "list-unsubscribe" in overridden:
        # Our one-click promise is about our URL; the request's own header replaces both.
        overridden.add("list-unsubscribe-post")
    return [(n, v) for n, v in defaults if n.lower() not in overridden] + custom


def _custom_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"header name {name!r} is not valid: use printable ASCII without ':' or spaces"
            )
        key = name.lower()
        if key in FORBIDDEN_HEADERS or key in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} may not be set in a request's headers")
        if key in seen:
            raise ValueError(f"header {name!r} is given more than once")
        seen.add(key)
        _check(name, value)
        out.append((name, value.strip(" \t")))
    return out


def _check(header: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(
            f"header {header!r} contains a line break or NUL character, which would "
            "inject header lines; remove CR, LF and NUL from the value"
        )


def _message_id(local: str, domain: str) -> str:
    if not _DOT_ATOM.fullmatch(local):
        raise ValueError(f"Message-ID: {local!r} is not a dot-atom")
    _check("Message-ID", domain)
    return f"<{local}@{_ascii_domain(domain, 'Message-ID')}>"


def _ascii_domain(domain: str, header: str) -> str:
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{header}: domain {domain!r} cannot be IDNA-encoded: {exc}") from None


def _mailbox(mailbox: Mailbox, header: str) -> Address:
    _check(header, mailbox.email)
    name = (mailbox.name or "").strip()
    _check(header, name)
    local, at, domain = mailbox.email.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{header}: {mailbox.email!r} is not an email address")
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    if not local.isascii():
        raise ValueError(
            f"{header}: {mailbox.email!r} has a non-ASCII local part, which needs SMTPUTF8 "
            "(not supported)"
        )
    return Address(display_name=name, username=local, domain=_ascii_domain(domain, header))


def _address_header(msg: EmailMessage, header: str, mailboxes: tuple[Mailbox, ...]) -> None:
    addresses = [_mailbox(m, header) for m in mailboxes]
    if not any("=?" in a.display_name for a in addresses):
        msg[header] = addresses
        return
    # The stdlib decodes anything that looks like an encoded word, even in a
    # quoted string, so a name that contains "=?" is written as encoded words
    # (which decode back to exactly that text) and the header set as is.
    mailbox_texts = [
        f"{_encoded_words(header, a.display_name)} <{a.addr_spec}>" if a.display_name
        else a.addr_spec
        for a in addresses
    ]  # fmt: skip
    msg.set_raw(header, ",\r\n ".join(mailbox_texts))


def _list_unsubscribe(spec: MessageSpec) -> str:
    uris: list[str] = []
    for url in spec.list_unsubscribe_urls:
        _check("List-Unsubscribe", url)
        uris.append(_uri(url))
    if spec.list_unsubscribe_mailto:
        mailto = spec.list_unsubscribe_mailto
        _check("List-Unsubscribe", mailto)
        if not mailto.lower().startswith("mailto:"):
            mailto = f"mailto:{mailto}"
        uris.append(_uri(mailto))
    return ", ".join(f"<{u}>" for u in uris)


def _uri(uri: str) -> str:
    if not _URI.fullmatch(uri) or "<" in uri or ">" in uri:
        raise ValueError(
            f"List-Unsubscribe: {uri!r} is not a URI (percent-encode spaces and non-ASCII)"
        )
    return uri.replace(",", "%2C")  # RFC 2369 §2: literal commas must be encoded


def _fold(name: str, value: str) -> str:
    """Fold an unstructured value; RFC 2047 words when it is not plain ASCII."""
    if _PLAIN_TEXT.fullmatch(value) and "=?" not in value:
        folded = _fold_ascii(name, value)
        if folded is not None:
            return folded
    # Non-ASCII, or a word too long for any line (a token, a URL): encoded words
    # can be split anywhere and decoders join adjacent ones without a space.
    return _encoded_words(name, value)


def _fold_ascii(name: str, value: str) -> str | None:
    """Folded at white space; None when one word does not fit on a line of MAX_LINE."""
    pieces = re.findall(r"[ \t]*[^ \t]+", value)  # each word with the white space before it
    lines = [f"{name}: {pieces[0] if pieces else ''}"]
    for piece in pieces[1:]:
        if len(lines[-1]) + len(piece) > FOLD_AT:
            lines.append(piece)  # the fold goes before the white space: unfolding restores it
        else:
            lines[-1] += piece
    if any(len(line) > MAX_LINE for line in lines):
        return None
    return "\r\n".join(lines)[len(name) + 2 :]


def _encoded_words(name: str, value: str) -> str:
    """RFC 2047 Q-encoded UTF-8 words, each ≤ 75 characters, never splitting a character."""
    words: list[str] = []
    current = ""
    budget = max(FOLD_AT - len(name) - 2, 24) - 12  # 12 = len("=?utf-8?q?") + len("?=")
    for char in value:
        encoded = (
            "_"
            if char == " "
            else "".join(
                chr(b) if b in _Q_SAFE else f"={b:02X}" for b in char.encode("utf-8", "replace")
            )
        )
        if current and len(current) + len(encoded) > budget:
            words.append(current)
            current = ""
            budget = 75 - 12
        current += encoded
    words.append(current)
    return "\r\n ".join(f"=?utf-8?q?{w}?=" for w in words)


# ---------------------------------------------------------------- body


def _body(spec: MessageSpec) -> MIMEPart:
    related: list[Attachment] = []
    mixed: list[Attachment] = []
    for a in spec.attachments:
        embedded = a.disposition is Disposition.INLINE and a.content_id and spec.html is not None
        (related if embedded else mixed).append(a)
    alternatives: list[MIMEPart] = []
    if spec.text is not None:
        alternatives.append(_text_part(spec.text, "plain"))
    if spec.amp_html is not None:
        alternatives.append(_text_part(spec.amp_html, "x-amp-html"))
    if spec.html is not None:
        html = _text_part(spec.html, "html")
        if related:
            html = _multipart("related", [html, *(_attachment_part(a) for a in related)])
        alternatives.append(html)
    if not alternatives:
        alternatives.append(_text_part("", "plain"))
    body = alternatives[0] if len(alternatives) == 1 else _multipart("alternative", alternatives)
    if mixed:
        body = _multipart("mixed", [body, *(_attachment_part(a) for a in mixed)])
    return body


def _text_part(text: str, subtype: str) -> MIMEPart:
    part = MIMEPart(policy=_POLICY)
    # cte=None lets the stdlib choose: 7bit for short ASCII lines, else the
    # shorter of quoted-printable and base64. It would write a NUL as is under
    # "7bit", which RFC 2045 §2.7 forbids (and SMTP servers refuse): "=00".
    cte = "quoted-printable" if "\0" in text else None
    part.set_content(text, subtype=subtype, charset="utf-8", cte=cte)
    return part


def _multipart(subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    container = MIMEPart(policy=_POLICY)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def _attachment_part(attachment: Attachment) -> MIMEPart:
    _check("Content-Disposition", attachment.filename)
    _check("Content-Type", attachment.type)
    m = _MIME_TYPE.fullmatch(attachment.type.split(";", 1)[0].strip())
    # An unreadable type still delivers the file, as bytes of no declared kind.
    maintype, subtype = (m.group(1), m.group(2)) if m else ("application", "octet-stream")
    if maintype.lower() == "multipart":
        maintype, subtype = "application", "octet-stream"
    cid = None
    if attachment.content_id:
        _check("Content-ID", attachment.content_id)
        bare = attachment.content_id.strip().removeprefix("<").removesuffix(">")
        if not bare or any(c.isspace() or c in "<>" for c in bare) or not bare.isascii():
            raise ValueError(f"Content-ID: {attachment.content_id!r} is not a valid content id")
        cid = f"<{bare}>"
    part = MIMEPart(policy=_POLICY)
    part.set_content(
        attachment.content,
        maintype,
        subtype,
        disposition=attachment.disposition.value,
        filename=attachment.filename,
        cid=cid,
        params={"name": attachment.filename},
    )
    return part
