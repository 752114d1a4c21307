"""The SMTP client's state machine: one Enum of states, one table of transitions.

Modelled on h11's ``_state.py``. A transition is triggered either by an action
of ours (sending a command, finishing the TLS handshake) or by the server's
reply to a command that changes the session (greeting, EHLO/HELO, STARTTLS,
AUTH, DATA, end of data, QUIT). Replies to MAIL, RCPT, RSET and NOOP change
nothing here: MAIL, RCPT and RSET may be pipelined (RFC 2920), so the state
moves when we send them and their replies are results, not transitions.

Two triggers apply in every live state and are added to the table below:
``SERVICE_CLOSING`` (a 421 reply, RFC 5321 §3.8) and ``EOF``.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import Final


class State(Enum):
    AWAIT_GREETING = auto()  # connected; the server's banner is due
    GREETED = auto()  # banner accepted (or TLS just started): say EHLO, or HELO after EHLO failed
    EHLO_SENT = auto()
    HELO_SENT = auto()
    READY = auto()  # session open, no transaction under way
    STARTTLS_SENT = auto()
    TLS_HANDSHAKE = auto()  # server said 220 to STARTTLS: do the TLS handshake now
    AUTH_SENT = auto()
    AUTH_CHALLENGED = auto()  # server sent 334: answer it with auth_response()
    MAIL = auto()  # MAIL FROM sent, no RCPT yet
    RCPT = auto()  # at least one RCPT TO sent
    DATA_SENT = auto()  # DATA sent, its reply (354) is due
    MESSAGE = auto()  # 354 received: send the message
    MESSAGE_SENT = auto()  # message and final dot sent: the verdict is due
    REJECTED = auto()  # the server refused the session or is closing it: QUIT only
    QUIT_SENT = auto()
    CLOSED = auto()
    ERROR = auto()  # the server broke the protocol or our I/O failed: unusable


class Trigger(Enum):
    # Our actions.
    SEND_EHLO = "send EHLO"
    SEND_HELO = "send HELO"
    SEND_STARTTLS = "send STARTTLS"
    TLS_ESTABLISHED = "finish the TLS handshake"
    SEND_AUTH = "send AUTH"
    SEND_AUTH_RESPONSE = "answer an AUTH challenge"
    SEND_MAIL = "send MAIL FROM"
    SEND_RCPT = "send RCPT TO"
    SEND_DATA = "send DATA"
    SEND_MESSAGE = "send the message"
    SEND_RSET = "send RSET"
    SEND_NOOP = "send NOOP"
    SEND_QUIT = "send QUIT"
    # The server's replies.
    GREETING_OK = "greeting accepted"
    GREETING_REFUSED = "greeting refused"
    EHLO_OK = "EHLO accepted"
    EHLO_NOT_UNDERSTOOD = "EHLO not understood"
    EHLO_REFUSED = "EHLO refused"
    HELO_OK = "HELO accepted"
    HELO_REFUSED = "HELO refused"
    STARTTLS_OK = "STARTTLS accepted"
    STARTTLS_REFUSED = "STARTTLS refused"
    AUTH_CHALLENGE = "AUTH challenge"
    AUTH_OK = "AUTH accepted"
    AUTH_REFUSED = "AUTH refused"
    DATA_GO_AHEAD = "DATA accepted (354)"
    DATA_REFUSED = "DATA refused"
    MESSAGE_VERDICT = "reply to the end of data"
    QUIT_REPLY = "reply to QUIT"
    SERVICE_CLOSING = "421 service closing"
    EOF = "connection closed by the server"


_TERMINAL: Final = frozenset({State.CLOSED, State.ERROR})

TRANSITIONS: Final[dict[tuple[State, Trigger], State]] = {
    (State.AWAIT_GREETING, Trigger.GREETING_OK): State.GREETED,
    (State.AWAIT_GREETING, Trigger.GREETING_REFUSED): State.REJECTED,
    (State.GREETED, Trigger.SEND_EHLO): State.EHLO_SENT,
    (State.GREETED, Trigger.SEND_HELO): State.HELO_SENT,
    (State.GREETED, Trigger.SEND_QUIT): State.QUIT_SENT,
    (State.EHLO_SENT, Trigger.EHLO_OK): State.READY,
    (State.EHLO_SENT, Trigger.EHLO_NOT_UNDERSTOOD): State.GREETED,
    (State.EHLO_SENT, Trigger.EHLO_REFUSED): State.REJECTED,
    (State.HELO_SENT, Trigger.HELO_OK): State.READY,
    (State.HELO_SENT, Trigger.HELO_REFUSED): State.REJECTED,
    (State.READY, Trigger.SEND_STARTTLS): State.STARTTLS_SENT,
    (State.STARTTLS_SENT, Trigger.STARTTLS_OK): State.TLS_HANDSHAKE,
    (State.STARTTLS_SENT, Trigger.STARTTLS_REFUSED): State.READY,
    (State.TLS_HANDSHAKE, Trigger.TLS_ESTABLISHED): State.GREETED,
    (State.READY, Trigger.SEND_AUTH): State.AUTH_SENT,
    (State.AUTH_SENT, Trigger.AUTH_CHALLENGE): State.AUTH_CHALLENGED,
    (State.AUTH_SENT, Trigger.AUTH_OK): State.READY,
    (State.AUTH_SENT, Trigger.AUTH_REFUSED): State.READY,
    (State.AUTH_CHALLENGED, Trigger.SEND_AUTH_RESPONSE): State.AUTH_SENT,
    (State.READY, Trigger.SEND_MAIL): State.MAIL,
    (State.MAIL, Trigger.SEND_RCPT): State.RCPT,
    (State.RCPT, Trigger.SEND_RCPT): State.RCPT,
    (State.RCPT, Trigger.SEND_DATA): State.DATA_SENT,
    (State.DATA_SENT, Trigger.DATA_GO_AHEAD): State.MESSAGE,
    (State.DATA_SENT, Trigger.DATA_REFUSED): State.READY,
    (State.MESSAGE, Trigger.SEND_MESSAGE): State.MESSAGE_SENT,
    (State.MESSAGE_SENT, Trigger.MESSAGE_VERDICT): State.READY,
    (State.READY, Trigger.SEND_RSET): State.READY,
    (State.MAIL, Trigger.SEND_RSET): State.READY,
    (State.RCPT, Trigger.SEND_RSET): State.READY,
    (State.READY, Trigger.SEND_NOOP): State.READY,
    (State.READY, Trigger.SEND_QUIT): State.QUIT_SENT,
    (State.MAIL, Trigger.SEND_QUIT): State.QUIT_SENT,
    (State.RCPT, Trigger.SEND_QUIT): State.QUIT_SENT,
    (State.REJECTED, Trigger.SEND_QUIT): State.QUIT_SENT,
    (State.QUIT_SENT, Trigger.QUIT_REPLY): State.CLOSED,
    # A 421 may answer any command (RFC 5321 §3.8); the server then closes.
    **{
        (state, Trigger.SERVICE_CLOSING): State.REJECTED
        for state in State
        if state not in _TERMINAL | {State.QUIT_SENT}
    },
    **{(state, Trigger.EOF): State.CLOSED for state in State if state not in _TERMINAL},
}


def allowed_actions(state: State) -> list[str]:
    """Our actions the table allows in ``state``, for error messages."""
    return [
        trigger.value
        for (s, trigger) in TRANSITIONS
        if s is state and trigger.name.startswith(("SEND_", "TLS_"))
    ]
