"""The SMTP server's state machine: one table, Enum states, every transition.

``TRANSITIONS[state][trigger]`` is the state the connection moves to when
the trigger completes. A trigger is either a command (moving there once it
is *accepted*, by the core or by the caller's policy; a refused command
leaves the state unchanged) or a :class:`Step` the core takes by itself.
A command missing from a state's row is out of sequence there (503).
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_commands import Command
from appliance.protocols.smtp_reply import Reply


class SmtpState(Enum):
    GREETING = "greeting"  # connected; the greeting is not decided yet
    REFUSED = "refused"  # a 554 greeting was sent; only QUIT is served (RFC 5321 §3.1)
    AWAIT_HELO = "await_helo"  # greeted; waiting for EHLO/HELO
    READY = "ready"  # EHLO/HELO done, no mail transaction
    AUTH = "auth"  # a SASL exchange is in progress (334 sent)
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one RCPT accepted
    DATA = "data"  # 354 sent; reading the message up to <CRLF>.<CRLF>
    STARTTLS = "starttls"  # 220 sent for STARTTLS; waiting for the TLS handshake
    CLOSED = "closed"


class Step(Enum):
    """Transitions not caused by a command line."""

    GREET = "greet"
    REFUSE = "refuse"
    SASL_CHALLENGE = "sasl_challenge"
    SASL_DONE = "sasl_done"
    END_OF_DATA = "end_of_data"
    TLS_ESTABLISHED = "tls_established"
    CLOSE = "close"


Trigger = Command | Step

S = SmtpState
C = Command

TRANSITIONS: Final[dict[SmtpState, dict[Trigger, SmtpState]]] = {
    S.GREETING: {Step.GREET: S.AWAIT_HELO, Step.REFUSE: S.REFUSED, Step.CLOSE: S.CLOSED},
    S.REFUSED: {C.QUIT: S.CLOSED, Step.CLOSE: S.CLOSED},
    S.AWAIT_HELO: {
        C.EHLO: S.READY,
        C.HELO: S.READY,
        C.RSET: S.AWAIT_HELO,
        C.NOOP: S.AWAIT_HELO,
        C.VRFY: S.AWAIT_HELO,
        C.HELP: S.AWAIT_HELO,
        C.QUIT: S.CLOSED,
        Step.CLOSE: S.CLOSED,
    },
    S.READY: {
        C.EHLO: S.READY,
        C.HELO: S.READY,
        C.STARTTLS: S.STARTTLS,
        C.AUTH: S.READY,  # AUTH with an initial response, decided at once
        Step.SASL_CHALLENGE: S.AUTH,
        C.MAIL: S.MAIL,
        C.RSET: S.READY,
        C.NOOP: S.READY,
        C.VRFY: S.READY,
        C.HELP: S.READY,
        C.QUIT: S.CLOSED,
        Step.CLOSE: S.CLOSED,
    },
    S.AUTH: {Step.SASL_DONE: S.READY, Step.CLOSE: S.CLOSED},
    S.MAIL: {
        C.RCPT: S.RCPT,
        C.EHLO: S.READY,
        C.HELO: S.READY,
        C.RSET: S.READY,
        C.NOOP: S.MAIL,
        C.VRFY: S.MAIL,
        C.HELP: S.MAIL,
        C.QUIT: S.CLOSED,
        Step.CLOSE: S.CLOSED,
    },
    S.RCPT: {
        C.RCPT: S.RCPT,
        C.DATA: S.DATA,
        C.EHLO: S.READY,
        C.HELO: S.READY,
        C.RSET: S.READY,
        C.NOOP: S.RCPT,
        C.VRFY: S.RCPT,
        C.HELP: S.RCPT,
        C.QUIT: S.CLOSED,
        Step.CLOSE: S.CLOSED,
    },
    S.DATA: {Step.END_OF_DATA: S.READY, Step.CLOSE: S.CLOSED},
    S.STARTTLS: {Step.TLS_ESTABLISHED: S.AWAIT_HELO, Step.CLOSE: S.CLOSED},
    S.CLOSED: {},
}

# States in which the input is read as command lines (not SASL, not message data).
COMMAND_STATES: Final = frozenset({S.REFUSED, S.AWAIT_HELO, S.READY, S.MAIL, S.RCPT})


def next_state(state: SmtpState, trigger: Trigger) -> SmtpState | None:
    """Where ``trigger`` leads from ``state``; None if it is not allowed there."""
    return TRANSITIONS[state].get(trigger)


# Commands that count against max_commands_without_transaction.
COUNTED_COMMANDS: Final = frozenset(
    {
        Command.HELO,
        Command.EHLO,
        Command.RSET,
        Command.NOOP,
        Command.VRFY,
        Command.HELP,
        Command.MAIL,
        Command.AUTH,
        Command.STARTTLS,
    }
)


def out_of_sequence_reply(state: SmtpState, command: Command) -> Reply:
    """The 503 (or 554) for ``command`` missing from ``state``'s row, with a hint."""
    in_transaction = state in (SmtpState.MAIL, SmtpState.RCPT)
    if state is SmtpState.AWAIT_HELO:
        return R.HELO_FIRST
    if command is Command.MAIL and in_transaction:
        return R.SENDER_ALREADY_GIVEN
    if command is Command.RCPT:
        return R.MAIL_FIRST
    if command is Command.DATA:
        return R.NO_VALID_RECIPIENTS if state is SmtpState.MAIL else R.RCPT_FIRST
    if command is Command.AUTH and in_transaction:
        return R.AUTH_IN_TRANSACTION
    if command is Command.STARTTLS and in_transaction:
        return R.STARTTLS_IN_TRANSACTION
    return R.BAD_SEQUENCE
