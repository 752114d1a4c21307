"""Incremental reader of SMTP replies as a client receives them (RFC 5321 §4.2).

Bytes go in with :meth:`ReplyReader.feed`; complete replies (multi-line ones
joined) come out of :meth:`ReplyReader.next_reply`. The reader knows nothing
about commands or state: the client core matches replies to what it sent.

Limits keep a hostile or broken server from making us buffer without end:
one line may not exceed ``max_line_bytes`` and one reply (all its lines) may
not exceed ``max_reply_bytes``.
"""

from __future__ import annotations

from appliance.protocols.smtp_reply import Reply

DEFAULT_MAX_LINE_BYTES = 8 * 1024
"""RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; we accept far more."""

DEFAULT_MAX_REPLY_BYTES = 64 * 1024
"""A whole (multi-line) reply larger than this is refused as absurd."""


class ReplySyntaxError(ValueError):
    """The bytes received are not a well-formed SMTP reply (the server's fault)."""


class ReplyReader:
    """Turns a byte stream from an SMTP server into :class:`Reply` records."""

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self._buffer = bytearray()
        self._scan_from = 0  # bytes of _buffer already known to hold no LF
        self._code: int | None = None  # code of the reply being assembled
        self._texts: list[str] = []
        self._reply_bytes = 0
        self._max_line = max_line_bytes
        self._max_reply = max_reply_bytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as part of a complete reply line."""
        return len(self._buffer)

    @property
    def in_reply(self) -> bool:
        """True when part of a reply (some of its lines) has been read."""
        return self._code is not None or bool(self._buffer)

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or None if more bytes are needed.

        Raises :class:`ReplySyntaxError` for malformed or oversized replies.
        """
        while True:
            line = self._next_line()
            if line is None:
                return None
            code, final, text = self._parse_line(line)
            if self._code is None:
                self._code = code
            elif code != self._code:
                raise ReplySyntaxError(
                    f"reply line has code {code} inside a multi-line {self._code} reply"
                )
            self._texts.append(text)
            if final:
                texts, self._texts = self._texts, []
                self._code = None
                self._reply_bytes = 0
                return Reply.from_lines(code, texts)

    def _next_line(self) -> bytes | None:
        end = self._buffer.find(b"\n", self._scan_from)
        if end < 0:
            self._scan_from = len(self._buffer)
            if len(self._buffer) > self._max_line:
                raise ReplySyntaxError(
                    f"reply line longer than {self._max_line} bytes without a line end"
                )
            self._check_reply_size(len(self._buffer))
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scan_from = 0
        if len(line) > self._max_line:
            raise ReplySyntaxError(f"reply line longer than {self._max_line} bytes")
        self._reply_bytes += end + 1
        self._check_reply_size(0)
        # RFC 5321 requires CRLF; a bare LF is tolerated, as most clients do.
        return line[:-1] if line.endswith(b"\r") else line

    def _check_reply_size(self, pending: int) -> None:
        if self._reply_bytes + pending > self._max_reply:
            raise ReplySyntaxError(f"reply larger than {self._max_reply} bytes")

    @staticmethod
    def _parse_line(line: bytes) -> tuple[int, bool, str]:
        head = line[:3]
        if len(head) < 3 or not head.isdigit():
            raise ReplySyntaxError(f"reply line does not start with a 3-digit code: {line[:40]!r}")
        code = int(head)
        if not 200 <= code <= 599:
            raise ReplySyntaxError(f"reply code {code} is outside 200-599")
        sep = line[3:4]
        if sep == b"-":
            final = False
        elif sep in (b" ", b""):
            final = True
        else:
            raise ReplySyntaxError(f"reply code not followed by space or hyphen: {line[:40]!r}")
        text = line[4:].decode("utf-8", errors="replace")
        return code, final, text
