"""Settings of the SMTP server core: resource limits and when AUTH is offered."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

SECONDS: Final = 1.0
MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    """Resource limits of one SMTP conversation."""

    max_command_line: int = 512
    """Octets including CRLF (RFC 5321 §4.5.3.1.4); longer lines get 500 5.5.2."""
    max_message_size: int = 10 * MIB
    """Octets of message content after dot-unstuffing; advertised as SIZE."""
    max_recipients: int = 100
    """Accepted recipients per transaction; more get 452 4.5.3."""
    max_errors: int = 10
    """The error that reaches this count is answered 421 4.7.0 and closes."""
    max_commands_without_transaction: int = 100
    """NOOP/RSET/VRFY/HELP/EHLO/HELO/MAIL/AUTH/STARTTLS and refused RCPTs
    allowed between two completed messages; past it, 421 4.7.0 and close."""
    idle_timeout: float = 300 * SECONDS
    """For the I/O adapter: the longest wait for the client (RFC 5321 §4.5.3.2.7)."""

    def __post_init__(self) -> None:
        for name in (
            "max_command_line",
            "max_message_size",
            "max_recipients",
            "max_errors",
            "max_commands_without_transaction",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SmtpLimits.{name} must be at least 1, not {getattr(self, name)}")
        if self.max_command_line < 512:
            raise ValueError("SmtpLimits.max_command_line must be at least 512 (RFC 5321)")
        if self.idle_timeout <= 0:
            raise ValueError(f"SmtpLimits.idle_timeout must be positive, not {self.idle_timeout}")


DEFAULT_LIMITS: Final = SmtpLimits()


class AuthMode(Enum):
    """When AUTH is offered."""

    DISABLED = "disabled"  # never (the inbound bounce server)
    AFTER_TLS = "after_tls"  # only on a TLS-protected connection (submission)
    ALWAYS = "always"  # also in plain text (trusted networks, tests)
