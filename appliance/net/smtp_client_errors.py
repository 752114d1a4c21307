"""Errors of the trio SMTP client: which step failed, against which server, and why.

Every error names the step (``Step``), the server (``host:port``) and the
reply when the server gave one, so a delivery log can say "the step that
failed" in one sentence, e.g. ``connection refused by mx.example.com:25 during
connect``. Failures *inside* a mail transaction that the server answers (a
refused MAIL, RCPT or DATA) are not errors: they are in ``TransactionResult``.
"""

from __future__ import annotations

from appliance.protocols.smtp_client_outcome import Step
from appliance.protocols.smtp_reply import Reply


class SmtpSessionError(Exception):
    """The session with the server failed at ``step``."""

    def __init__(
        self, step: Step, host: str, port: int, detail: str, *, reply: Reply | None = None
    ) -> None:
        super().__init__(f"{detail} during {step.value}")
        self.step = step
        self.host = host
        self.port = port
        self.reply = reply

    @property
    def server(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def transient(self) -> bool:
        """Worth retrying later: everything except a permanent (5xx) reply."""
        return self.reply is None or not self.reply.is_permanent()


class SmtpConnectFailed(SmtpSessionError):
    """No TCP connection: refused, unreachable, name not resolved."""


class SmtpTimeout(SmtpSessionError):
    """A deadline from ``SmtpTimeouts`` passed; the connection has been given up."""


class SmtpConnectionLost(SmtpSessionError):
    """The server closed or broke the connection, or it is no longer usable."""


class SmtpProtocolViolation(SmtpSessionError):
    """The server sent something that is not valid SMTP."""


class SmtpRejected(SmtpSessionError):
    """The server refused a session step (greeting, EHLO/HELO, AUTH) or is closing (421)."""


class SmtpAuthenticationFailed(SmtpRejected):
    """The server refused our credentials (typically ``535 5.7.8``)."""


class TlsUnavailable(SmtpSessionError):
    """TLS is required but the server does not offer STARTTLS, or refused it."""


class TlsNegotiationFailed(SmtpSessionError):
    """The TLS handshake failed or stalled; the connection has been closed.

    With ``starttls="opportunistic"`` the caller may reconnect with
    ``starttls="never"`` to deliver in plaintext, as RFC 7435 allows.
    """
