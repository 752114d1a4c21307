"""Events the SMTP server core hands to its caller.

Events marked *decision* wait for the caller's answer, ``accept()`` or
``reject(reply)`` on the connection, before the core reads any further.
The others are told after the core has already answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from appliance.protocols.smtp_reply import Reply


class NeedData(Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA
"""Returned by ``next_event()``: send ``data_to_send()``, then feed more bytes."""


@dataclass(frozen=True, slots=True)
class SmtpEnvelope:
    """The envelope of one mail transaction as the client gave it."""

    mail_from: str
    recipients: tuple[str, ...]
    mail_params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.mail_params


@dataclass(frozen=True, slots=True)
class Connected:
    """Decision: greet the client (accept) or refuse service (reject, e.g. 554 or 421)."""


@dataclass(frozen=True, slots=True)
class Helo:
    """Decision: the client said EHLO (``extended``) or HELO with ``hostname``."""

    hostname: str
    extended: bool


@dataclass(frozen=True, slots=True)
class StartTlsRequested:
    """Decision: accept sends 220, then the caller runs the TLS handshake and
    calls ``tls_established()``; bytes the client pipelined after STARTTLS are
    discarded (STARTTLS command injection, CVE-2011-0411)."""


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    """Decision: check these credentials (accept → 235, reject → e.g. 535 5.7.8)."""

    mechanism: str
    username: str
    password: str = field(repr=False)
    authorization_id: str = ""


@dataclass(frozen=True, slots=True)
class MailFrom:
    """Decision: the reverse-path (``""`` for the null sender) and its parameters."""

    address: str
    params: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RcptTo:
    """Decision: one forward-path and its parameters."""

    address: str
    params: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageData:
    """Decision: the complete message, dot-unstuffed, with CRLF line endings."""

    data: bytes = field(repr=False)
    envelope: SmtpEnvelope

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """Told: the core refused a message at end of data (too big, bare CR/LF)."""

    reply: Reply
    size: int
    envelope: SmtpEnvelope


class CloseReason(Enum):
    QUIT = "quit"
    PEER_CLOSED = "peer_closed"
    TOO_MANY_ERRORS = "too_many_errors"
    TOO_MANY_COMMANDS = "too_many_commands"
    POLICY = "policy"  # a decision answered 421/521, or refused the greeting with 4xx
    LOCAL = "local"  # the caller closed: idle timeout, shutdown, internal error


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Told: the conversation is over; send ``data_to_send()`` and close.

    ``reply`` is the last reply the core queued (None if the peer just left).
    """

    reason: CloseReason
    reply: Reply | None = None


DecisionEvent = Connected | Helo | StartTlsRequested | AuthAttempt | MailFrom | RcptTo | MessageData
Event = DecisionEvent | MessageRefused | ConnectionClosed
