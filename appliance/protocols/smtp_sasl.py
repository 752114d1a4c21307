"""The server side of SMTP AUTH exchanges (RFC 4954): PLAIN (RFC 4616) and
LOGIN (draft-murchison-sasl-login), with or without an initial response.

An exchange turns the AUTH argument and the client's response lines into
either the next challenge (bytes to send) or the finished
:class:`AuthAttempt` for the caller's policy to judge. Malformed input
raises :class:`RemoteProtocolError` with the reply to answer.
"""

from __future__ import annotations

import binascii
from typing import Final

from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_server_errors import RemoteProtocolError
from appliance.protocols.smtp_server_events import AuthAttempt

SASL_MECHANISMS: Final = ("PLAIN", "LOGIN")

# R.AUTH_CONTINUE as sent: "334 " keeps its space for an empty challenge (RFC 4954 §4).
_EMPTY_CHALLENGE: Final = b"334 \r\n"

Challenge = bytes


class SaslExchange:
    """One AUTH exchange in progress."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self._username: str | None = None

    @classmethod
    def start(cls, argument: str) -> tuple[SaslExchange, Challenge | AuthAttempt]:
        """Begin with the AUTH argument (``"PLAIN"``, ``"LOGIN dXNlcg=="`` …)."""
        parts = argument.split()
        if not parts or len(parts) > 2:
            raise RemoteProtocolError(R.AUTH_SYNTAX)
        mechanism = parts[0].upper()
        if mechanism not in SASL_MECHANISMS:
            raise RemoteProtocolError(R.AUTH_MECHANISM_UNKNOWN)
        exchange = cls(mechanism)
        if len(parts) == 2:
            return exchange, exchange.respond(parts[1])
        if mechanism == "PLAIN":
            return exchange, _EMPTY_CHALLENGE
        return exchange, R.AUTH_LOGIN_USERNAME.to_bytes()

    def respond(self, response: str) -> Challenge | AuthAttempt:
        """Take one base64 response (initial or after a 334)."""
        if self.mechanism == "PLAIN":
            return _plain_attempt(response)
        if self._username is None:
            self._username = decode_sasl(response)
            return R.AUTH_LOGIN_PASSWORD.to_bytes()
        return AuthAttempt("LOGIN", self._username, decode_sasl(response))


def decode_sasl(text: str) -> str:
    """Decode one base64 SASL response (``=`` is the empty response)."""
    if text == "=":
        return ""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True).decode("utf-8")
    except (ValueError, UnicodeError):
        raise RemoteProtocolError(R.AUTH_SYNTAX) from None


def _plain_attempt(response: str) -> AuthAttempt:
    """RFC 4616: ``authzid NUL authcid NUL passwd``."""
    parts = decode_sasl(response).split("\0")
    if len(parts) != 3 or not parts[1]:
        raise RemoteProtocolError(R.AUTH_SYNTAX)
    authzid, username, password = parts
    return AuthAttempt("PLAIN", username, password, authzid)
