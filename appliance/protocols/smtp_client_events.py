"""What the SMTP client core hands back: events, the commands they answer, extensions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from appliance.protocols.smtp_reply import Reply


class Command(Enum):
    """What a reply answers. GREETING is the banner; MESSAGE is the end-of-data dot."""

    GREETING = "greeting"
    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    MESSAGE = "end of data"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"


# Commands that may be followed by others before their reply arrives (RFC 2920 §3.1).
PIPELINABLE: Final = frozenset({Command.RSET, Command.MAIL, Command.RCPT})


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The server answered ``command``; ``argument`` is the recipient for RCPT."""

    command: Command
    reply: Reply
    argument: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection (end of stream after the last whole reply)."""


class NeedData(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by ``next_event()`` when more bytes must be received first."""

Event = ReplyReceived | ConnectionClosed


class AuthMechanism(Enum):
    PLAIN = "PLAIN"
    LOGIN = "LOGIN"


@dataclass(frozen=True, slots=True)
class Extensions:
    """Service extensions from an EHLO reply (RFC 5321 §4.1.1.1).

    ``params`` maps each upper-cased keyword to its parameter text ("" when none).
    """

    params: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Extensions:
        params: dict[str, str] = {}
        for line in reply.lines[1:]:  # the first line is the server's name and greeting
            keyword, _, rest = line.strip().partition(" ")
            if not keyword:
                continue
            keyword = keyword.upper()
            if keyword.startswith("AUTH="):  # pre-RFC 4954 form: "AUTH=LOGIN PLAIN"
                rest = f"{keyword[5:]} {rest}"
                keyword = "AUTH"
            if keyword == "AUTH" and "AUTH" in params:  # both forms offered: merge them
                rest = f"{params['AUTH']} {rest}"
            params[keyword] = rest.strip()
        return cls(params)

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.params

    @property
    def size_limit(self) -> int | None:
        """The SIZE limit in octets; 0 if SIZE is offered without a limit; None if absent."""
        if "SIZE" not in self.params:
            return None
        value = self.params["SIZE"].split(" ", 1)[0]
        return int(value) if value.isdigit() else 0

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(m.upper() for m in self.params.get("AUTH", "").split())

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.params

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.params

    @property
    def eight_bit_mime(self) -> bool:
        return "8BITMIME" in self.params

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.params

    @property
    def enhanced_status_codes(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self.params


NO_EXTENSIONS: Final = Extensions()
"""What a server greeted with HELO (or not yet greeted) offers."""
