"""Errors raised by the sans-io SMTP client core, by blame (h11 ``_util`` style).

- :class:`LocalProtocolError`: our code asked for something the protocol does
  not allow in the current state. A bug on our side; nothing was sent.
- :class:`RemoteProtocolError`: the server sent something that is not valid
  SMTP (malformed or oversized reply, a reply nobody asked for). Its fault.
- :class:`LocalRefusal`: the request is valid but this server cannot carry
  it (needs SMTPUTF8 it lacks, too big for its SIZE). Nothing was sent; the
  error carries the reply code and enhanced status to report the failure with.
"""

from __future__ import annotations

from appliance.protocols.smtp_reply import EnhancedStatus


class SmtpClientError(Exception):
    """Base of the client core's errors."""


class LocalProtocolError(SmtpClientError):
    """Our side tried an action the SMTP state machine does not allow."""

    def __init__(self, message: str, *, state: str | None = None, action: str | None = None):
        super().__init__(message)
        self.state = state
        self.action = action


class RemoteProtocolError(SmtpClientError):
    """The server broke the protocol; the connection cannot be used any more."""


class LocalRefusal(SmtpClientError):
    """We decline to send this transaction to this server, before sending anything.

    ``code`` and ``enhanced`` are what a bounce for it should say (as if the
    server had answered so).
    """

    def __init__(self, message: str, *, code: int, enhanced: EnhancedStatus) -> None:
        super().__init__(message)
        self.code = code
        self.enhanced = enhanced


class SmtpUtf8Unsupported(LocalRefusal):
    """The message needs SMTPUTF8 (RFC 6531) but the server does not offer it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=553, enhanced=EnhancedStatus(5, 6, 7))


class MessageTooBig(LocalRefusal):
    """The message is larger than the server's advertised SIZE (RFC 1870)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=552, enhanced=EnhancedStatus(5, 3, 4))


class AuthUnavailable(LocalRefusal):
    """The server offers no AUTH mechanism we can use (or no AUTH at all)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=530, enhanced=EnhancedStatus(5, 7, 0))
