"""Preparing a message for the DATA phase: line ends, dot-stuffing, what it needs.

All line ends (CRLF, bare LF, bare CR) become CRLF before anything else, so
the server sees exactly the lines we meant and nothing can smuggle an
end-of-data sequence (``<LF>.<LF>`` and friends) past a lenient server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_LINE_END_RE = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message ready for DATA.

    ``wire`` is what goes on the wire after the server's 354: CRLF line ends,
    dot-stuffed, terminated by ``.<CRLF>``. ``size`` is the RFC 1870 size
    (octets with CRLF line ends, before dot-stuffing).
    """

    wire: bytes
    size: int
    eight_bit: bool
    needs_smtputf8: bool


def normalise_line_ends(data: bytes) -> bytes:
    """CRLF, bare LF and bare CR all become CRLF; a last unterminated line gets CRLF."""
    out = _LINE_END_RE.sub(b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def dot_stuff(data: bytes) -> bytes:
    """Double a leading '.' on every line (RFC 5321 §4.5.2). Expects CRLF line ends."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed


def header_section(data: bytes) -> bytes:
    """The header section of a CRLF-normalised message (everything before the blank line)."""
    if data.startswith(b"\r\n"):
        return b""
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


def prepare_message(
    message: bytes, *, envelope_from: str = "", recipients: Iterable[str] = ()
) -> OutboundMessage:
    """Normalise and dot-stuff ``message`` and work out which extensions it needs.

    It needs SMTPUTF8 (RFC 6531) when an envelope address or the header section
    is not ASCII, and 8BITMIME (RFC 6152) when any octet is above 127.
    """
    normalised = normalise_line_ends(message)
    eight_bit = not normalised.isascii()
    addresses_ascii = envelope_from.isascii() and all(r.isascii() for r in recipients)
    needs_smtputf8 = not addresses_ascii or (eight_bit and not header_section(normalised).isascii())
    return OutboundMessage(
        wire=dot_stuff(normalised) + b".\r\n",
        size=len(normalised),
        eight_bit=eight_bit,
        needs_smtputf8=needs_smtputf8,
    )
