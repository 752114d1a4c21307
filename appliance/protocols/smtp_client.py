"""Sans-io SMTP client core (RFC 5321, with RFC 1870, 2920, 3207, 4954, 6152, 6531).

Like h11, it never touches a socket. Feed it what the server sent with
:meth:`SmtpClient.receive_data` (``b""`` at end of stream), take replies out
with :meth:`SmtpClient.next_event` (an event, or ``NEED_DATA``), and call a
method per command to get the bytes to send. Every action and every reply
that changes the session goes through the table in ``smtp_client_state``; an
action the table does not allow raises :class:`LocalProtocolError` naming the
state and the action, a malformed reply raises :class:`RemoteProtocolError`.

Replies are matched to commands in the order the commands were sent, so
MAIL, RCPT and RSET can be pipelined when the server offers PIPELINING, with
DATA last in the batch (RFC 2920 §3.1). Without PIPELINING, sending a
command while a reply is outstanding is a :class:`LocalProtocolError`.

A session, as the trio adapter drives it::

    client = SmtpClient(helo_name="out.example.net")
    # GREETING reply -> client.ehlo() -> EHLO reply
    # (optional) client.starttls() -> 220 -> TLS handshake -> client.tls_established()
    #            -> client.ehlo() again
    # (optional) client.auth(user, password) -> 334 -> client.auth_response() ... -> 235
    # client.mail(...) + client.rcpt(...) * n + client.data()  (one batch if pipelining)
    # 354 -> client.message(prepared) -> verdict; client.rset() before the next one
    # client.quit()
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass
from typing import Final

from appliance.protocols.smtp_client_errors import (
    AuthUnavailable,
    LocalProtocolError,
    MessageTooBig,
    RemoteProtocolError,
    SmtpUtf8Unsupported,
)
from appliance.protocols.smtp_client_events import (
    NEED_DATA,
    NO_EXTENSIONS,
    PIPELINABLE,
    AuthMechanism,
    Command,
    ConnectionClosed,
    Event,
    Extensions,
    NeedData,
    ReplyReceived,
)
from appliance.protocols.smtp_client_message import OutboundMessage, prepare_message
from appliance.protocols.smtp_client_state import TRANSITIONS, State, Trigger, allowed_actions
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_reply_reader import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_REPLY_BYTES,
    ReplyReader,
    ReplySyntaxError,
)

# Replies to EHLO after which HELO is worth a try (RFC 5321 §3.2, §4.1.4).
EHLO_FALLBACK_CODES: Final = frozenset({500, 501, 502, 550})

# Reply classes each command may get; anything else is a protocol error.
# 421 is accepted for every command and handled before this check.
_VALID_CLASSES: Final[dict[Command, frozenset[int]]] = {
    Command.GREETING: frozenset({2, 4, 5}),
    Command.EHLO: frozenset({2, 4, 5}),
    Command.HELO: frozenset({2, 4, 5}),
    Command.STARTTLS: frozenset({2, 4, 5}),
    Command.AUTH: frozenset({2, 3, 4, 5}),
    Command.MAIL: frozenset({2, 4, 5}),
    Command.RCPT: frozenset({2, 4, 5}),
    Command.DATA: frozenset({3, 4, 5}),
    Command.MESSAGE: frozenset({2, 4, 5}),
    Command.RSET: frozenset({2, 4, 5}),
    Command.NOOP: frozenset({2, 4, 5}),
    Command.QUIT: frozenset({2, 3, 4, 5}),
}


@dataclass(frozen=True, slots=True)
class _Pending:
    command: Command
    argument: str | None = None


@dataclass(slots=True)
class _AuthExchange:
    mechanism: AuthMechanism
    username: str
    password: str
    responses_sent: int = 0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _check_token(kind: str, value: str) -> None:
    if not value or any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise LocalProtocolError(f"invalid {kind} {value!r}: must be non-empty, without spaces")


def check_address(kind: str, address: str) -> None:
    """Raise :class:`LocalProtocolError` for what would break the command line.

    Control characters (CR/LF injection) and angle brackets are refused; the
    syntax of the address itself is for the caller to have checked.
    """
    if kind == "recipient" and not address:
        raise LocalProtocolError("empty recipient address")
    bad = [c for c in address if ord(c) < 0x20 or ord(c) == 0x7F or c in "<>"]
    if bad:
        raise LocalProtocolError(f"invalid {kind} address {address!r}: contains {bad[0]!r}")


class SmtpClient:
    """The client side of one SMTP connection, without I/O."""

    def __init__(
        self,
        *,
        helo_name: str,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        _check_token("HELO name", helo_name)
        self.helo_name = helo_name
        self._limits = (max_line_bytes, max_reply_bytes)
        self._reader = ReplyReader(max_line_bytes=max_line_bytes, max_reply_bytes=max_reply_bytes)
        self._state = State.AWAIT_GREETING
        self._pending: deque[_Pending] = deque([_Pending(Command.GREETING)])
        self._eof = False
        self._extensions = NO_EXTENSIONS
        self._greeting: Reply | None = None
        self._tls_active = False
        self._authenticated = False
        self._auth: _AuthExchange | None = None
        self._challenge: Reply | None = None
        self._transaction_smtputf8 = False

    # -- What we know -------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def extensions(self) -> Extensions:
        """What the last EHLO advertised (nothing before EHLO, after HELO or after STARTTLS)."""
        return self._extensions

    @property
    def greeting(self) -> Reply | None:
        return self._greeting

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def pending(self) -> tuple[Command, ...]:
        """Commands sent whose replies have not been read yet, oldest first."""
        return tuple(p.command for p in self._pending)

    @property
    def can_pipeline(self) -> bool:
        return self._extensions.pipelining

    # -- Receiving ----------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes received from the server; ``b""`` means the server closed."""
        if self._eof:
            if data:
                raise LocalProtocolError("received data after end of stream", state=self._name)
            return
        if data:
            self._reader.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """The next reply to a command we sent, ``ConnectionClosed``, or ``NEED_DATA``.

        Bytes that arrive while no reply is outstanding stay buffered until a
        command is sent that they can answer.
        """
        if self._state is State.ERROR:
            raise LocalProtocolError("cannot read replies in state ERROR", state=self._name)
        if self._state is State.CLOSED:
            return ConnectionClosed()
        if self._pending:
            try:
                reply = self._reader.next_reply()
            except ReplySyntaxError as exc:
                raise self._remote_error(f"{exc} (awaiting the reply to {self._awaiting})") from exc
            if reply is not None:
                return self._on_reply(reply)
            if self._eof and self._reader.in_reply:
                raise self._remote_error(
                    f"connection closed in the middle of the reply to {self._awaiting}"
                )
        if self._eof:
            self._apply(Trigger.EOF)
            self._pending.clear()
            self._forget_credentials()
            return ConnectionClosed()
        return NEED_DATA

    # -- Session commands ---------------------------------------------------

    def ehlo(self) -> bytes:
        return self._send(Trigger.SEND_EHLO, Command.EHLO, f"EHLO {self.helo_name}")

    def helo(self) -> bytes:
        return self._send(Trigger.SEND_HELO, Command.HELO, f"HELO {self.helo_name}")

    def starttls(self) -> bytes:
        if self._tls_active:
            raise LocalProtocolError(
                "cannot send STARTTLS: TLS is already active", state=self._name, action="STARTTLS"
            )
        return self._send(Trigger.SEND_STARTTLS, Command.STARTTLS, "STARTTLS")

    def tls_established(self) -> None:
        """Tell the core the TLS handshake succeeded; EHLO must be sent again (RFC 3207 §4.2)."""
        self._apply(Trigger.TLS_ESTABLISHED)
        self._tls_active = True
        self._extensions = NO_EXTENSIONS
        self._reader = ReplyReader(max_line_bytes=self._limits[0], max_reply_bytes=self._limits[1])

    def auth(self, username: str, password: str, mechanism: AuthMechanism | None = None) -> bytes:
        """Start AUTH (RFC 4954): PLAIN with an initial response, or LOGIN.

        Without ``mechanism``, PLAIN is preferred over LOGIN among those advertised.
        """
        if self._authenticated:
            raise LocalProtocolError(
                "cannot send AUTH: already authenticated", state=self._name, action="AUTH"
            )
        offered = self._extensions.auth_mechanisms
        if mechanism is None:
            for candidate in (AuthMechanism.PLAIN, AuthMechanism.LOGIN):
                if candidate.value in offered:
                    mechanism = candidate
                    break
            else:
                listed = " ".join(sorted(offered)) or "none"
                raise AuthUnavailable(
                    f"server offers no AUTH mechanism we support (offered: {listed}; "
                    "we support PLAIN and LOGIN)"
                )
        if mechanism is AuthMechanism.PLAIN:
            line = f"AUTH PLAIN {_b64(chr(0) + username + chr(0) + password)}"
        else:
            line = "AUTH LOGIN"
        data = self._send(Trigger.SEND_AUTH, Command.AUTH, line, mechanism.value)
        self._auth = _AuthExchange(mechanism, username, password)
        return data

    def auth_response(self) -> bytes:
        """Answer the server's 334 challenge: the username, then the password, then cancel."""
        exchange, challenge = self._auth, self._challenge
        if self._state is State.AUTH_CHALLENGED and exchange is not None and challenge is not None:
            prompt = self._decode_challenge(challenge).lower()
            step = exchange.responses_sent
            if exchange.mechanism is AuthMechanism.PLAIN and step == 0:
                answer = _b64(f"\0{exchange.username}\0{exchange.password}")
            elif exchange.mechanism is AuthMechanism.LOGIN and step < 2:
                if prompt.startswith("user"):
                    wants_password = False
                elif prompt.startswith("pass"):
                    wants_password = True
                else:  # an unusual prompt: username first, then password
                    wants_password = step == 1
                answer = _b64(exchange.password if wants_password else exchange.username)
            else:
                answer = "*"  # cancel the exchange (RFC 4954 §4); the server replies 501
            exchange.responses_sent += 1
        else:
            answer = ""  # _send raises: the state does not allow it
        return self._send(Trigger.SEND_AUTH_RESPONSE, Command.AUTH, answer)

    @staticmethod
    def _decode_challenge(reply: Reply) -> str:
        try:
            return base64.b64decode(reply.text.strip(), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""

    # -- Mail transaction ---------------------------------------------------

    def check_message(self, message: OutboundMessage) -> None:
        """Raise :class:`LocalRefusal` if this server cannot take ``message``; send nothing.

        SMTPUTF8 is required when the message needs it; the SIZE limit is
        honoured when one is advertised. An 8-bit message goes to a server
        without 8BITMIME as it is (as Postfix does): we never downgrade.
        """
        if message.needs_smtputf8 and not self._extensions.smtputf8:
            raise SmtpUtf8Unsupported(
                "the message needs SMTPUTF8 (non-ASCII addresses or headers) "
                "but the server does not offer it"
            )
        limit = self._extensions.size_limit
        if limit and message.size > limit:
            raise MessageTooBig(
                f"the message is {message.size} bytes, over the server's SIZE limit of {limit}"
            )

    def mail(self, sender: str, message: OutboundMessage | None = None) -> bytes:
        """MAIL FROM, with SIZE=, BODY=8BITMIME and SMTPUTF8 as the message and server call for.

        ``sender`` "" is the null reverse-path ``<>`` (bounces).
        """
        check_address("sender", sender)
        if message is None:
            message = prepare_message(b"", envelope_from=sender)
        elif not sender.isascii() and not message.needs_smtputf8:
            message = OutboundMessage(message.wire, message.size, message.eight_bit, True)
        self.check_message(message)
        params = []
        if self._extensions.size_limit is not None and message.size:
            params.append(f"SIZE={message.size}")
        if message.eight_bit and self._extensions.eight_bit_mime:
            params.append("BODY=8BITMIME")
        if message.needs_smtputf8:
            params.append("SMTPUTF8")
        line = " ".join([f"MAIL FROM:<{sender}>", *params])
        data = self._send(Trigger.SEND_MAIL, Command.MAIL, line, sender)
        self._transaction_smtputf8 = message.needs_smtputf8
        return data

    def rcpt(self, recipient: str) -> bytes:
        check_address("recipient", recipient)
        if not recipient.isascii() and not self._transaction_smtputf8:
            raise LocalProtocolError(
                f"recipient {recipient!r} needs SMTPUTF8 but MAIL FROM was sent without it",
                state=self._name,
                action="RCPT",
            )
        return self._send(Trigger.SEND_RCPT, Command.RCPT, f"RCPT TO:<{recipient}>", recipient)

    def data(self) -> bytes:
        return self._send(Trigger.SEND_DATA, Command.DATA, "DATA")

    def message(self, message: OutboundMessage | bytes) -> bytes:
        """The message after 354: normalised, dot-stuffed, with the final ``.<CRLF>``."""
        prepared = message if isinstance(message, OutboundMessage) else prepare_message(message)
        self._check_allowed(Trigger.SEND_MESSAGE)
        self._apply(Trigger.SEND_MESSAGE)
        self._pending.append(_Pending(Command.MESSAGE))
        return prepared.wire

    def rset(self) -> bytes:
        return self._send(Trigger.SEND_RSET, Command.RSET, "RSET")

    def noop(self) -> bytes:
        return self._send(Trigger.SEND_NOOP, Command.NOOP, "NOOP")

    def quit(self) -> bytes:
        return self._send(Trigger.SEND_QUIT, Command.QUIT, "QUIT")

    def send_failed(self) -> None:
        """Tell the core our I/O failed (timeout, broken stream): the connection is unusable."""
        self._state = State.ERROR
        self._pending.clear()
        self._forget_credentials()

    # -- Internals ----------------------------------------------------------

    @property
    def _name(self) -> str:
        return self._state.name

    @property
    def _awaiting(self) -> str:
        return self._pending[0].command.value if self._pending else "nothing"

    def _remote_error(self, message: str) -> RemoteProtocolError:
        self.send_failed()
        return RemoteProtocolError(message)

    def _check_allowed(self, trigger: Trigger) -> None:
        if (self._state, trigger) not in TRANSITIONS:
            allowed = ", ".join(allowed_actions(self._state)) or "nothing"
            raise LocalProtocolError(
                f"cannot {trigger.value} in state {self._name} (allowed: {allowed})",
                state=self._name,
                action=trigger.value,
            )

    def _apply(self, trigger: Trigger) -> None:
        self._check_allowed(trigger)
        self._state = TRANSITIONS[(self._state, trigger)]

    def _send(
        self, trigger: Trigger, command: Command, line: str, argument: str | None = None
    ) -> bytes:
        self._check_allowed(trigger)
        if self._pending and not (
            self._extensions.pipelining and all(p.command in PIPELINABLE for p in self._pending)
        ):
            why = "" if self._extensions.pipelining else " (the server does not offer PIPELINING)"
            raise LocalProtocolError(
                f"cannot {trigger.value} while the reply to {self._awaiting} is outstanding{why}",
                state=self._name,
                action=trigger.value,
            )
        self._state = TRANSITIONS[(self._state, trigger)]
        self._pending.append(_Pending(command, argument))
        return f"{line}\r\n".encode()

    def _on_reply(self, reply: Reply) -> ReplyReceived:
        pending = self._pending.popleft()
        trigger = self._classify(pending.command, reply)
        if trigger is not None:
            self._apply(trigger)
        match trigger:
            case Trigger.GREETING_OK | Trigger.GREETING_REFUSED:
                self._greeting = reply
            case Trigger.EHLO_OK:
                self._extensions = Extensions.from_ehlo(reply)
            case Trigger.HELO_OK:
                self._extensions = NO_EXTENSIONS
            case Trigger.STARTTLS_OK if self._reader.buffered or self._reader.in_reply:
                # Anything after the 220 was sent in plaintext and would be read
                # as if it came over TLS: a response injection attempt.
                raise self._remote_error("server sent data after its 220 reply to STARTTLS")
            case Trigger.AUTH_CHALLENGE:
                self._challenge = reply
            case Trigger.AUTH_OK:
                self._authenticated = True
                self._forget_credentials()
            case Trigger.AUTH_REFUSED:
                self._forget_credentials()
            case Trigger.SERVICE_CLOSING:
                self._pending.clear()  # the server closes; nothing else will be answered
                self._forget_credentials()
            case _:
                pass
        return ReplyReceived(pending.command, reply, pending.argument)

    def _classify(self, command: Command, reply: Reply) -> Trigger | None:
        code, first = reply.code, reply.code // 100
        if command is Command.QUIT:
            return Trigger.QUIT_REPLY
        if code == 421:
            return Trigger.SERVICE_CLOSING
        bad_auth_3xx = command is Command.AUTH and first == 3 and code != 334
        if first not in _VALID_CLASSES[command] or bad_auth_3xx:
            raise self._remote_error(f"unexpected reply {code} to {command.value}: {reply}")
        positive = first == 2
        match command:
            case Command.GREETING:
                return Trigger.GREETING_OK if positive else Trigger.GREETING_REFUSED
            case Command.EHLO:
                if positive:
                    return Trigger.EHLO_OK
                if code in EHLO_FALLBACK_CODES:
                    return Trigger.EHLO_NOT_UNDERSTOOD
                return Trigger.EHLO_REFUSED
            case Command.HELO:
                return Trigger.HELO_OK if positive else Trigger.HELO_REFUSED
            case Command.STARTTLS:
                return Trigger.STARTTLS_OK if positive else Trigger.STARTTLS_REFUSED
            case Command.AUTH:
                if code == 334:
                    return Trigger.AUTH_CHALLENGE
                return Trigger.AUTH_OK if positive else Trigger.AUTH_REFUSED
            case Command.DATA:
                return Trigger.DATA_GO_AHEAD if first == 3 else Trigger.DATA_REFUSED
            case Command.MESSAGE:
                return Trigger.MESSAGE_VERDICT
            case _:
                return None  # MAIL, RCPT, RSET, NOOP: results, not transitions

    def _forget_credentials(self) -> None:
        self._auth = None
        self._challenge = None
