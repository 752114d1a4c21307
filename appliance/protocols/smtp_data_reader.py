"""Reading the message after DATA: end of data, dot-unstuffing, size cap.

The end of data is ONLY ``<CRLF>.<CRLF>`` (RFC 5321 §4.1.1.4): lines are
split at CRLF and nowhere else, so ``\\n.\\n``, ``\\r.\\r``, ``\\n.\\r\\n``
and ``\\r\\n.\\n`` are ordinary content. Such content holds a bare CR or LF,
which RFC 5321 §2.3.8 forbids and which is what SMTP smuggling relies on
(a downstream server that reads it as a line end would see two messages).
We do not normalise it: the reader flags it, and the server refuses the
whole message (550 5.6.11) once the real end of data arrives, so no
ambiguous byte stream is ever stored or relayed.

Lines longer than RFC 5322's 998 octets are accepted (much real mail has
them); the total size is what is capped. Past the cap the reader keeps
scanning for the end of data but stops storing bytes.

The ``<CRLF>`` ending the DATA command line counts as the one before the
first line, so ``.<CRLF>`` straight after DATA is an empty message.
"""

from __future__ import annotations

_DOT = 0x2E
_CR = 0x0D
_END_LINE_PREFIXES = (b"", b".", b".\r")


class DataReader:
    """Consumes message bytes from a buffer until the end-of-data line."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._content = bytearray()
        self._at_line_start = True
        self.size = 0
        """Bytes of content seen so far (after unstuffing), stored or not."""
        self.too_big = False
        self.bare_line_ending = False

    @property
    def content(self) -> bytes:
        return bytes(self._content)

    def feed(self, buf: bytearray) -> bool:
        """Consume what can be consumed from ``buf``; True once the end-of-data
        line has been consumed (``buf`` then holds what follows it)."""
        pos = 0
        try:
            while True:
                crlf = buf.find(b"\r\n", pos)
                if crlf < 0:
                    pos = self._take_partial(buf, pos, len(buf))
                    return False
                if self._at_line_start and crlf - pos == 1 and buf[pos] == _DOT:
                    pos = crlf + 2
                    return True
                self._take(buf, pos, crlf, crlf + 2)
                self._at_line_start = True
                pos = crlf + 2
        finally:
            del buf[:pos]

    def _take_partial(self, buf: bytearray, pos: int, end: int) -> int:
        """Take the start of a line whose CRLF has not arrived; return where
        the kept-back rest begins. Kept back: a trailing CR (it may begin the
        CRLF), and at a line start a ``.`` or ``.\r`` (it may be the end)."""
        if pos == end:
            return pos
        if self._at_line_start and end - pos < 3 and bytes(buf[pos:end]) in _END_LINE_PREFIXES:
            return pos
        stop = end - 1 if buf[end - 1] == _CR else end
        if stop > pos:
            self._take(buf, pos, stop, stop)
            self._at_line_start = False
        return stop

    def _take(self, buf: bytearray, start: int, body_end: int, end: int) -> None:
        """Store ``buf[start:end]``; ``buf[start:body_end]`` is line content
        (CR and LF in it are bare), ``buf[body_end:end]`` its CRLF if any."""
        if self._at_line_start and start < body_end and buf[start] == _DOT:
            start += 1  # dot-unstuffing, RFC 5321 §4.5.2
        if buf.find(b"\r", start, body_end) >= 0 or buf.find(b"\n", start, body_end) >= 0:
            self.bare_line_ending = True
        self.size += end - start
        if self.size > self._max_size:
            if not self.too_big:
                self.too_big = True
                self._content = bytearray()
        else:
            self._content += buf[start:end]
