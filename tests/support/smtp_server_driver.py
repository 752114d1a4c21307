"""Drive the sans-io SMTP server core in unit tests: feed bytes (whole or in
chunks), answer its decisions with a plain function, collect what it says."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    MessageData,
    MessageRefused,
    SmtpServerConnection,
    SmtpState,
    StartTlsRequested,
)
from appliance.protocols.smtp_server_events import DecisionEvent

Decide = Callable[[DecisionEvent], Reply | None]

_REPLY_LINE_RE = re.compile(rb"([2-5][0-9]{2})(?:([ -])([^\r\n]*))?\r\n")


def accept_all(event: DecisionEvent) -> Reply | None:
    return None


def new_core(**options: Any) -> SmtpServerConnection:
    options.setdefault("hostname", "mx.test")
    return SmtpServerConnection(**options)


@dataclass
class Transcript:
    output: bytes = b""
    events: list[Event] = field(default_factory=list)

    @property
    def replies(self) -> list[Reply]:
        return parse_replies(self.output)

    @property
    def codes(self) -> list[int]:
        return [reply.code for reply in self.replies]

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    @property
    def messages(self) -> list[MessageData]:
        return self.of_type(MessageData)

    @property
    def closed(self) -> ConnectionClosed | None:
        closed = self.of_type(ConnectionClosed)
        return closed[-1] if closed else None


def parse_replies(output: bytes) -> list[Reply]:
    """Split server output into replies; fails the test on any malformed line."""
    replies: list[Reply] = []
    texts: list[str] = []
    code: int | None = None
    pos = 0
    while pos < len(output):
        match = _REPLY_LINE_RE.match(output, pos)
        assert match is not None, f"malformed reply line at {pos}: {output[pos : pos + 80]!r}"
        line_code = int(match.group(1))
        assert code is None or code == line_code, f"code changed inside a reply: {output!r}"
        code = line_code
        texts.append((match.group(3) or b"").decode())
        if match.group(2) != b"-":
            replies.append(Reply.from_lines(code, texts))
            texts, code = [], None
        pos = match.end()
    assert code is None, f"unterminated multi-line reply: {output!r}"
    return replies


def _chunks(data: bytes, size: int | None) -> Iterator[bytes]:
    if size is None:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i : i + size]


def pump(
    core: SmtpServerConnection, transcript: Transcript, decide: Decide, *, handshake: bool
) -> bool:
    """Handle events until the core needs data; True once it closed."""
    while True:
        event = core.next_event()
        if event is NEED_DATA:
            transcript.output += core.data_to_send()
            return False
        transcript.events.append(event)
        if isinstance(event, ConnectionClosed):
            transcript.output += core.data_to_send()
            return True
        if isinstance(event, MessageRefused):
            continue
        transcript.output += core.answer(decide(event))
        if isinstance(event, StartTlsRequested) and core.state is SmtpState.STARTTLS:
            if not handshake:
                return False  # the caller plays the handshake
            core.tls_established()


def drive(
    core: SmtpServerConnection,
    data: bytes = b"",
    *,
    decide: Decide = accept_all,
    chunk_size: int | None = None,
    eof: bool = False,
    handshake: bool = True,
) -> Transcript:
    """Feed ``data`` (in ``chunk_size`` pieces), answering every decision with
    ``decide``; STARTTLS is accepted by ``decide`` and, with ``handshake``,
    followed at once by ``tls_established()`` as if TLS had been set up."""
    transcript = Transcript()
    closed = pump(core, transcript, decide, handshake=handshake)
    for chunk in _chunks(data, chunk_size):
        if closed or not chunk:
            break
        core.receive_data(chunk)
        closed = pump(core, transcript, decide, handshake=handshake)
    if eof and not closed:
        core.receive_data(b"")
        pump(core, transcript, decide, handshake=handshake)
    return transcript
