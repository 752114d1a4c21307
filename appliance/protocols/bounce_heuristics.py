"""Non-standard bounces: the human-readable reports many MTAs send instead of a DSN.

qmail, Exim, Sendmail, Postfix, Exchange, Gmail, Yahoo, Domino, Courier and
the rest all follow one shape: an explanation, the failed address (alone on
a line, in angle brackets, or before a colon), the remote server's reply near
it, then a copy of the original message. This module finds that shape
without knowing which MTA wrote it:

1. cut the text where the returned original begins;
2. find addresses, ranked by how they are presented (a line of its own or a
   ``<address>:`` label beats an address inside a sentence);
3. take the lines around each address as its diagnostic, with any reply code
   and enhanced status in them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from appliance.protocols.smtp_reply import EnhancedStatus

ADDRESS_RE: Final = re.compile(
    r"(?<![\w.+=/-])([\w.+=/'!#$%&*?^`{|}~-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}|"
    r"[\w.+=/'!#$%&*?^`{|}~-]+@\[[0-9.]+\])",
)

# Where a copy of the original message (or its headers) starts in the text.
_ORIGINAL_MARKER_RE: Final = re.compile(
    r"^[\s>|-]*(?:"
    r"-+ ?(?:original message|this is a copy|below this line|original mail|"
    r"returned message|unsent message|message text follows|the header of the original)"
    r"|original message(?: headers)?:?\s*$"
    r"|[-=_]*\s*(?:original|returned) message (?:follows|headers?)"
    r"|--- below this line is a copy"
    r"|-+ ?(?:the )?(?:original )?message (?:header|headers|text) (?:follows|below)"
    r"|\*+ ?original message"
    r"|content-type: message/rfc822"
    r"|the first \d+ lines? of your message"
    r")",
    re.IGNORECASE,
)
_HEADER_START_RE: Final = re.compile(
    r"^(?:Received|Return-Path|Message-ID|DKIM-Signature|X-Received|Delivered-To):",
    re.IGNORECASE,
)
_REPLY_CODE_RE: Final = re.compile(r"(?<![\d.#])([45][0-5]\d)(?:[ -]|$)")
_NOT_RECIPIENT_LINE_RE: Final = re.compile(
    r"^\s*(?:message-id|in-reply-to|references|received|return-path|sender|reply-to|from|to|cc"
    r"|bcc|subject|date|sent)\s*:"
    r"|\(envelope-from|\bfrom:? <|mail from:?\s*<|\bby [\w.-]+ with\b|\bid <",
    re.IGNORECASE,
)
_ALONE_RE: Final = re.compile(
    r"^\s*(?:[\w.\"' -]{0,40}?<(?:mailto:)?)?<?(?:mailto:)?"
    r"(?P<addr>[^\s<>]+@[^\s<>]+?)>*\s*(?:[:.;]|\.{3})?\s*(?:\(.{0,60}\))?\s*(?:\bon\b.*)?$",
    re.IGNORECASE,
)
_LABEL_RE: Final = re.compile(
    r"^\s*(?:rcpt to:|recipient(?: address)?:|to:|failed recipient:|addressee:"
    r"|original-recipient:|final-recipient:|\s*<)\s*<?(?:rfc822;)?\s*<?(?P<addr>[^\s<>]+@[^\s<>:]+)",
    re.IGNORECASE,
)
_ERROR_NEAR_RE: Final = re.compile(
    r"unknown|no such|not exist|invalid|unavailable|rejected|refused|denied|full|quota"
    r"|failed|error|blocked|disabled|not found|said:|\b[45]\d\d\b",
    re.IGNORECASE,
)
_TRANSCRIPT_RE: Final = re.compile(r"^\s*(?:>>>|<<<)\s")
_IGNORED_LOCAL_PARTS: Final = frozenset({"mailer-daemon", "postmaster-noreply"})


@dataclass(frozen=True, slots=True)
class TextFinding:
    """One failed recipient found in free text, with the lines that explain it."""

    recipient: str
    diagnostic: str
    code: int | None
    status: str | None
    rank: int = 0  # 0: presented as the failed address, 1: in a reply line, 2: in prose


def normalise_address(text: str) -> str:
    """Lowercase, without the X.400 ``SMTP=`` prefix or stray punctuation around it."""
    address = text.strip(".'").lower()
    if address.startswith("smtp="):
        address = address[len("smtp=") :]
    return address


def report_section(text: str) -> str:
    """The explanation part of a text bounce: everything before the returned original."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if i > 0 and _ORIGINAL_MARKER_RE.match(line):
            return "\n".join(lines[:i])
        if (
            i > 0
            and _HEADER_START_RE.match(line)
            and i + 1 < len(lines)
            and re.match(r"^(?:[A-Za-z-]+:|\s)", lines[i + 1])
        ):
            return "\n".join(lines[:i])
    return text


def reply_code_in(text: str) -> int | None:
    m = _REPLY_CODE_RE.search(text)
    return int(m.group(1)) if m else None


def status_in(text: str) -> str | None:
    """An enhanced status in text, ignoring bare class-2 codes (they are not failures)."""
    for m in re.finditer(r"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])", text):
        found = EnhancedStatus.parse(m.group(0))
        if found is not None:
            return str(found)
    return None


def _context(lines: list[str], i: int, address: str) -> str:
    """The address line and the paragraph following it, up to the next failed address.

    A session transcript (``>>> RCPT To:<a>`` then ``<<< 550 ...``) written just
    above the address line is its cause, and names the SMTP stage: it comes first,
    unless it names another address.
    """
    start = i
    while start > 0 and i - start < 3 and _TRANSCRIPT_RE.match(lines[start - 1]):
        named = {normalise_address(m.group(1)) for m in ADDRESS_RE.finditer(lines[start - 1])}
        if named - {address}:
            break
        start -= 1
    out = [line.strip() for line in lines[start:i]] + [lines[i].strip()]
    for line in lines[i + 1 : i + 9]:
        if not line.strip():
            if len(out) > 1:
                break
            continue
        others = {normalise_address(m.group(1)) for m in ADDRESS_RE.finditer(line)} - {address}
        if others and (_ALONE_RE.match(line) or _REPLY_CODE_RE.match(line.strip())):
            break
        out.append(line.strip())
    return " ".join(out)


def _rank(line: str, address: str) -> int:
    """How the address is presented: 0 as the line's subject, 1 in a reply line, 2 in prose."""
    for pattern in (_ALONE_RE, _LABEL_RE):
        m = pattern.match(line)
        if m and normalise_address(m.group("addr").strip("<>:.,")) == address:
            return 0
    head = line.lower().split(address)[0]
    if len(head.strip(" \t<>\"'(")) <= 2 and _ERROR_NEAR_RE.search(line):
        return 0
    if _REPLY_CODE_RE.match(line.strip()) or status_in(line) or _ERROR_NEAR_RE.search(head):
        return 1
    return 2


def _finding(address: str, lines: list[str], i: int, rank: int) -> TextFinding:
    context = _context(lines, i, address) if i >= 0 else ""
    return TextFinding(address, context, reply_code_in(context), status_in(context), rank)


def scan_text_bounce(text: str, *, ignore: Collection[str] = ()) -> tuple[TextFinding, ...]:
    """Failed recipients named in a text bounce, in report order.

    Addresses presented as the subject of a line (rank 0) are all returned;
    failing those, all named in reply lines (rank 1); failing those, only the
    first address mentioned in prose (rank 2).
    ``ignore`` are addresses that cannot be the failed recipient unless
    presented as one (the bounce's own sender and addressee).
    """
    lines = report_section(text).splitlines()
    ranked: dict[str, tuple[int, int]] = {}
    for i, line in enumerate(lines):
        if _NOT_RECIPIENT_LINE_RE.search(line):
            continue
        for m in ADDRESS_RE.finditer(line):
            address = normalise_address(m.group(1))
            local = address.split("@", 1)[0]
            rank = _rank(line, address)
            if local in _IGNORED_LOCAL_PARTS or (rank > 0 and address in ignore):
                continue
            if address not in ranked or rank < ranked[address][0]:
                ranked[address] = (rank, i)
    best = min((rank for rank, _ in ranked.values()), default=None)
    chosen = [(a, i) for a, (rank, i) in ranked.items() if rank == best]
    if best == 2:
        chosen = chosen[:1]
    return tuple(_finding(a, lines, i, best or 0) for a, i in chosen)


def findings_for(text: str, addresses: Collection[str]) -> tuple[TextFinding, ...]:
    """The lines of a text bounce that explain already known failed addresses."""
    lines = report_section(text).splitlines()
    out = []
    for address in addresses:
        index = next((i for i, line in enumerate(lines) if address in line.lower()), -1)
        out.append(_finding(address, lines, index, 0))
    return tuple(out)
