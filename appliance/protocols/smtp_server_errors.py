"""Errors of the SMTP server core, by blame (the h11 model).

``RemoteProtocolError`` is the peer's fault: it carries the reply to answer
with, and the core answers it itself (the caller never sees it unless it
parses commands directly). ``LocalProtocolError`` is our bug: the code
driving the core called it out of turn. Both carry a reply so that a caller
that must say something to the peer knows what to say.
"""

from __future__ import annotations

from appliance.protocols.smtp_reply import Reply

LOCAL_ERROR_REPLY = Reply.build(451, "4.3.0", "Local error in processing, try again later")


class SmtpProtocolError(Exception):
    """Base of the SMTP server core's errors; ``reply`` is what to answer."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message)
        self.reply = reply


class RemoteProtocolError(SmtpProtocolError):
    """The client broke the protocol (syntax, sequence, limits)."""

    def __init__(self, reply: Reply, message: str | None = None) -> None:
        super().__init__(message or str(reply), reply)


class LocalProtocolError(SmtpProtocolError):
    """Our code drove the core wrongly, e.g. asked for the next event while a
    decision was still owed. Fix the caller; the peer did nothing wrong."""

    def __init__(self, message: str, reply: Reply = LOCAL_ERROR_REPLY) -> None:
        super().__init__(message, reply)
