"""Outcome records of an SMTP client session: the steps and what each transaction got."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from appliance.protocols.smtp_client_events import Command, ReplyReceived
from appliance.protocols.smtp_reply import Reply


class Step(Enum):
    """The steps of delivering over SMTP, in order; errors and results name one."""

    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    RSET = "rset"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    QUIT = "quit"


@dataclass(frozen=True, slots=True)
class RecipientResult:
    recipient: str
    reply: Reply

    @property
    def accepted(self) -> bool:
        return self.reply.is_positive()


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """What one mail transaction got, reply by reply.

    ``data_reply`` answers the DATA command (354 when the server is ready);
    ``message_reply`` is the server's verdict after the end of data. The
    message was accepted for the accepted recipients exactly when
    ``failed_step`` is None; some recipients may still have been refused.
    ``failed_step`` names the step whose reply ended the transaction.
    """

    envelope_from: str
    recipients: tuple[RecipientResult, ...]
    mail_reply: Reply | None = None
    data_reply: Reply | None = None
    message_reply: Reply | None = None
    rset_reply: Reply | None = None
    failed_step: Step | None = None

    def __post_init__(self) -> None:
        if self.failed_step is None and (
            self.message_reply is None or not self.message_reply.is_positive()
        ):
            raise ValueError("a transaction without failed_step needs a positive message_reply")

    @property
    def delivered(self) -> bool:
        return self.failed_step is None

    @property
    def accepted(self) -> tuple[str, ...]:
        """Recipients the message was delivered to (none if the transaction failed)."""
        if not self.delivered:
            return ()
        return tuple(r.recipient for r in self.recipients if r.accepted)

    @property
    def refused(self) -> tuple[RecipientResult, ...]:
        """Recipients the server refused at RCPT, with the reply that refused each."""
        return tuple(r for r in self.recipients if not r.accepted)

    @property
    def failure(self) -> Reply | None:
        """The reply that ended the transaction, or None if the message was accepted.

        For a failure at RCPT (every recipient refused) it is the first refusal.
        """
        match self.failed_step:
            case None:
                return None
            case Step.RSET:
                return self.rset_reply
            case Step.MAIL:
                return self.mail_reply
            case Step.RCPT:
                return self.refused[0].reply if self.refused else None
            case Step.DATA:
                if self.message_reply is not None:
                    return self.message_reply
                return self.data_reply
            case _:
                return None

    def reply_for(self, recipient: str) -> Reply | None:
        """The reply that settles ``recipient``: its RCPT refusal, or the message verdict.

        When the transaction failed before RCPT mattered (RSET or MAIL refused),
        that failure settles every recipient.
        """
        if self.failed_step in (Step.RSET, Step.MAIL):
            return self.failure
        for r in self.recipients:
            if r.recipient == recipient:
                if not r.accepted:
                    return r.reply
                return self.failure if self.failure is not None else self.message_reply
        return None


@dataclass(slots=True)
class TransactionTally:
    """Collects the replies of one transaction, in the order they come, into a result."""

    envelope_from: str
    rset_reply: Reply | None = None
    mail_reply: Reply | None = None
    data_reply: Reply | None = None
    message_reply: Reply | None = None
    recipients: list[RecipientResult] = field(default_factory=list)

    @property
    def mail_ok(self) -> bool:
        return self.mail_reply is not None and self.mail_reply.is_positive()

    @property
    def any_accepted(self) -> bool:
        return any(r.accepted for r in self.recipients)

    def record(self, event: ReplyReceived) -> None:
        reply = event.reply
        match event.command:
            case Command.RSET:
                self.rset_reply = reply
            case Command.MAIL:
                self.mail_reply = reply
            case Command.RCPT:
                self.recipients.append(RecipientResult(event.argument or "", reply))
            case Command.DATA:
                self.data_reply = reply
            case Command.MESSAGE:
                self.message_reply = reply
            case _:
                pass

    def failed_step(self) -> Step | None:
        """The step that ended the transaction so far, or None if nothing has failed."""
        if self.rset_reply is not None and not self.rset_reply.is_positive():
            return Step.RSET
        if self.mail_reply is None or not self.mail_reply.is_positive():
            return Step.MAIL
        if not self.any_accepted:
            return Step.RCPT
        for reply in (self.data_reply, self.message_reply):
            if reply is None or not reply.is_positive():
                return Step.DATA
        return None

    def result(self) -> TransactionResult:
        return TransactionResult(
            envelope_from=self.envelope_from,
            recipients=tuple(self.recipients),
            mail_reply=self.mail_reply,
            data_reply=self.data_reply,
            message_reply=self.message_reply,
            rset_reply=self.rset_reply,
            failed_step=self.failed_step(),
        )
