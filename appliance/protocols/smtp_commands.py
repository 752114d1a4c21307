"""Parsing of SMTP command lines (RFC 5321 §4.1), including the ESMTP
parameters of MAIL and RCPT (RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531
SMTPUTF8, RFC 4954 AUTH=).

Pure functions of text; every malformed input raises
:class:`RemoteProtocolError` with the reply to answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server_errors import RemoteProtocolError


class Command(Enum):
    HELO = "HELO"
    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    RSET = "RSET"
    NOOP = "NOOP"
    VRFY = "VRFY"
    HELP = "HELP"
    QUIT = "QUIT"


# Known verbs we do not offer: answered 502 rather than 500 (RFC 5321 §4.2.4).
NOT_IMPLEMENTED_VERBS = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "BDAT", "SEND", "SOML", "SAML"})

_VERB_RE = re.compile(r"[A-Za-z]{1,16}")


@dataclass(frozen=True, slots=True)
class CommandLine:
    """One command line: the verb and the text after the first space."""

    command: Command
    argument: str


@dataclass(frozen=True, slots=True)
class PathArgument:
    """The reverse- or forward-path of MAIL/RCPT and its ESMTP parameters.

    ``address`` is ``""`` for the null reverse-path ``<>``; a source route
    (``<@a,@b:user@c>``) is dropped as RFC 5321 §4.1.1.3 asks. Parameter
    keywords are upper-cased; a keyword without ``=value`` maps to None.
    """

    address: str
    params: Mapping[str, str | None] = field(default_factory=dict)


def parse_command_line(text: str) -> CommandLine:
    """Split ``"MAIL FROM:<a@b>"`` into the command and its argument."""
    if not text.strip():
        raise RemoteProtocolError(R.EMPTY_COMMAND)
    verb, _, argument = text.partition(" ")
    if _VERB_RE.fullmatch(verb) is None:
        raise RemoteProtocolError(R.UNKNOWN_COMMAND)
    verb = verb.upper()
    if verb in NOT_IMPLEMENTED_VERBS:
        raise RemoteProtocolError(R.NOT_IMPLEMENTED)
    try:
        command = Command(verb)
    except ValueError:
        raise RemoteProtocolError(R.UNKNOWN_COMMAND) from None
    return CommandLine(command, argument.strip(" "))


def parse_helo(argument: str) -> str:
    """The client's name from HELO/EHLO (a domain or address literal, taken leniently)."""
    name = argument.split(" ", 1)[0]
    if not name or not name.isprintable():
        raise RemoteProtocolError(R.HELO_SYNTAX)
    return name


# --- paths -----------------------------------------------------------------

_ATOM_CHAR = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])"
_DOT_STRING = rf"{_ATOM_CHAR}+(?:\.{_ATOM_CHAR}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e]|[^\x00-\x7f])*"'
_LET_DIG = r"(?:[A-Za-z0-9]|[^\x00-\x7f])"
_LABEL = rf"{_LET_DIG}(?:(?:[A-Za-z0-9-]|[^\x00-\x7f])*{_LET_DIG})?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_ADDRESS_LITERAL = (
    r"\[(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+)\]"
)
_MAILBOX_RE = re.compile(
    rf"(?P<local>{_DOT_STRING}|{_QUOTED_STRING})@(?P<domain>{_DOMAIN}|{_ADDRESS_LITERAL})"
)
_SOURCE_ROUTE_RE = re.compile(rf"@{_DOMAIN}(?:,@{_DOMAIN})*:")
_KEYWORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE_RE = re.compile(r"(?:[\x21-\x3c\x3e-\x7e]|[^\x00-\x7f])+")

MAX_LOCAL_PART = 64  # octets, RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # octets, RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # octets including the angle brackets, RFC 5321 §4.5.3.1.3


def parse_mail_from(argument: str) -> PathArgument:
    """Parse the argument of MAIL (``FROM:<address> params``); ``<>`` is allowed."""
    path, params = _split_path(argument, "FROM:", R.MAIL_SYNTAX)
    address = _parse_path(path, R.BAD_SENDER_ADDRESS, allow_null=True)
    return PathArgument(address, params)


def parse_rcpt_to(argument: str) -> PathArgument:
    """Parse the argument of RCPT (``TO:<address> params``); bare ``<postmaster>`` is allowed."""
    path, params = _split_path(argument, "TO:", R.RCPT_SYNTAX)
    if path[1:-1].lower() == "postmaster":
        return PathArgument("postmaster", params)
    address = _parse_path(path, R.BAD_RECIPIENT_ADDRESS, allow_null=False)
    return PathArgument(address, params)


def _split_path(argument: str, keyword: str, syntax: Reply) -> tuple[str, dict[str, str | None]]:
    if argument[: len(keyword)].upper() != keyword:
        raise RemoteProtocolError(syntax)
    rest = argument[len(keyword) :].lstrip(" ")  # "FROM: <a@b>" is common; tolerate it
    if not rest.startswith("<"):
        raise RemoteProtocolError(syntax)
    end = _closing_bracket(rest)
    if end < 0:
        raise RemoteProtocolError(syntax)
    path, tail = rest[: end + 1], rest[end + 1 :]
    if tail and not tail.startswith(" "):
        raise RemoteProtocolError(syntax)
    return path, parse_parameters(tail)


def _closing_bracket(text: str) -> int:
    """Index of the ``>`` closing the path, skipping quoted local parts."""
    quoted = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
    return -1


def _parse_path(path: str, bad: Reply, *, allow_null: bool) -> str:
    inner = path[1:-1]
    if inner == "":
        if allow_null:
            return ""
        raise RemoteProtocolError(bad)
    route = _SOURCE_ROUTE_RE.match(inner)
    if route is not None:
        inner = inner[route.end() :]
    match = _MAILBOX_RE.fullmatch(inner)
    if match is None:
        raise RemoteProtocolError(bad)
    if (
        len(match.group("local").encode()) > MAX_LOCAL_PART
        or len(match.group("domain").encode()) > MAX_DOMAIN
        or len(inner.encode()) + 2 > MAX_PATH
    ):
        raise RemoteProtocolError(bad)
    return inner


def parse_parameters(text: str) -> dict[str, str | None]:
    """Parse ``" SIZE=123 BODY=8BITMIME SMTPUTF8"`` (RFC 5321 §4.1.2 esmtp-param)."""
    params: dict[str, str | None] = {}
    for item in text.split():
        keyword, eq, value = item.partition("=")
        if _KEYWORD_RE.fullmatch(keyword) is None:
            raise RemoteProtocolError(R.PARAMETER_SYNTAX)
        if eq and _VALUE_RE.fullmatch(value) is None:
            raise RemoteProtocolError(R.PARAMETER_SYNTAX)
        key = keyword.upper()
        if key in params:
            raise RemoteProtocolError(R.PARAMETER_SYNTAX)
        params[key] = value if eq else None
    return params


def check_mail_parameters(params: Mapping[str, str | None], *, max_size: int) -> None:
    """Refuse MAIL parameters we do not offer, and a declared SIZE over our limit."""
    for key, value in params.items():
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise RemoteProtocolError(R.PARAMETER_SYNTAX)
            if int(value) > max_size:
                raise RemoteProtocolError(R.MESSAGE_TOO_BIG)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise RemoteProtocolError(R.PARAMETER_UNSUPPORTED)
        elif key == "SMTPUTF8":
            if value is not None:
                raise RemoteProtocolError(R.PARAMETER_SYNTAX)
        elif key == "AUTH":
            if value is None:  # RFC 4954 §5: a mailbox in xtext or <>; we only record it
                raise RemoteProtocolError(R.PARAMETER_SYNTAX)
        else:
            raise RemoteProtocolError(R.PARAMETER_UNSUPPORTED)


def check_rcpt_parameters(params: Mapping[str, str | None]) -> None:
    """We advertise no RCPT extension (no DSN), so any parameter is refused."""
    if params:
        raise RemoteProtocolError(R.PARAMETER_UNSUPPORTED)
