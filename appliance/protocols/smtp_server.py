"""Sans-io SMTP server core (RFC 5321 with ESMTP extensions), the h11 way.

Feed bytes with :meth:`SmtpServerConnection.receive_data` (``b""`` for end
of stream), pull events with :meth:`~SmtpServerConnection.next_event`, and
answer each *decision* event (:class:`Connected`, :class:`Helo`,
:class:`StartTlsRequested`, :class:`AuthAttempt`, :class:`MailFrom`,
:class:`RcptTo`, :class:`MessageData`) with ``accept()`` or ``reject(reply)``;
they return the bytes to send. Whatever the core answers by itself (NOOP,
syntax errors, 354 …) is queued in order behind earlier replies; send
:meth:`~SmtpServerConnection.data_to_send` whenever ``next_event()`` returns
:data:`NEED_DATA` or :class:`ConnectionClosed`. Policy (who may send, which
recipients exist, which keys are valid) is always the caller's decision.

Pipelined commands are handled one at a time in arrival order, and no
command is read while a decision is owed, so replies can never be out of
order. The state machine is the table in :mod:`smtp_server_states`; command
parsing is in :mod:`smtp_commands`; the DATA reader (end of data is only
``<CRLF>.<CRLF>``; bare CR/LF refused with 550 5.6.11) in
:mod:`smtp_data_reader`.
"""

from __future__ import annotations

from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_commands import (
    Command,
    check_mail_parameters,
    check_rcpt_parameters,
    parse_command_line,
    parse_helo,
    parse_mail_from,
    parse_rcpt_to,
)
from appliance.protocols.smtp_data_reader import DataReader
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_sasl import SASL_MECHANISMS, SaslExchange
from appliance.protocols.smtp_server_config import DEFAULT_LIMITS, AuthMode, SmtpLimits
from appliance.protocols.smtp_server_errors import LocalProtocolError, RemoteProtocolError
from appliance.protocols.smtp_server_events import (
    NEED_DATA,
    AuthAttempt,
    CloseReason,
    Connected,
    ConnectionClosed,
    DecisionEvent,
    Event,
    Helo,
    MailFrom,
    MessageData,
    MessageRefused,
    NeedData,
    RcptTo,
    SmtpEnvelope,
    StartTlsRequested,
)
from appliance.protocols.smtp_server_states import (
    COUNTED_COMMANDS,
    SmtpState,
    Step,
    Trigger,
    next_state,
    out_of_sequence_reply,
)

__all__ = [
    "DEFAULT_LIMITS",
    "NEED_DATA",
    "AuthAttempt",
    "AuthMode",
    "CloseReason",
    "Connected",
    "ConnectionClosed",
    "DecisionEvent",
    "Event",
    "Helo",
    "LocalProtocolError",
    "MailFrom",
    "MessageData",
    "MessageRefused",
    "NeedData",
    "RcptTo",
    "RemoteProtocolError",
    "SmtpEnvelope",
    "SmtpLimits",
    "SmtpServerConnection",
    "SmtpState",
    "StartTlsRequested",
]


class SmtpServerConnection:
    """One SMTP conversation, server side, without I/O."""

    def __init__(
        self,
        *,
        hostname: str,
        limits: SmtpLimits = DEFAULT_LIMITS,
        tls_available: bool = False,
        auth_mode: AuthMode = AuthMode.DISABLED,
        require_auth: bool = False,
    ) -> None:
        if require_auth and auth_mode is AuthMode.DISABLED:
            raise ValueError("require_auth needs an auth_mode other than DISABLED")
        if auth_mode is AuthMode.AFTER_TLS and require_auth and not tls_available:
            raise ValueError("require_auth with AUTH only after TLS needs tls_available")
        self.hostname = hostname
        self.limits = limits
        self.tls_available = tls_available
        self.auth_mode = auth_mode
        self.require_auth = require_auth
        self._state = SmtpState.GREETING
        self._buf = bytearray()
        self._out = bytearray()
        self._eof = False
        self._skipping_line = False
        self._pending: DecisionEvent | None = None
        self._closed: ConnectionClosed | None = None
        self._sasl: SaslExchange | None = None
        self._data: DataReader | None = None
        self._mail: MailFrom | None = None
        self._recipients: list[str] = []
        self._errors = 0
        self._commands_without_transaction = 0
        self.helo_name: str | None = None
        self.tls_active = False
        self.authenticated_user: str | None = None
        self.discarded_after_starttls = 0
        """Plain-text bytes dropped when STARTTLS was accepted (injection attempts)."""

    # --- inspection ------------------------------------------------------

    @property
    def state(self) -> SmtpState:
        return self._state

    @property
    def errors(self) -> int:
        return self._errors

    @property
    def envelope(self) -> SmtpEnvelope | None:
        """The transaction in progress, if MAIL was accepted."""
        if self._mail is None:
            return None
        return SmtpEnvelope(self._mail.address, tuple(self._recipients), self._mail.params)

    def auth_offered(self) -> bool:
        if self.auth_mode is AuthMode.DISABLED:
            return False
        return self.auth_mode is AuthMode.ALWAYS or self.tls_active

    # --- input -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` means it closed its side."""
        if self._state is SmtpState.CLOSED:
            return
        if self._eof:
            raise LocalProtocolError("receive_data() called after the end of stream (b'')")
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA. Raises LocalProtocolError only when
        a decision is still owed or the TLS handshake was not reported."""
        if self._pending is not None:
            raise LocalProtocolError(
                f"answer the pending {type(self._pending).__name__} with accept() or reject() "
                "before asking for the next event"
            )
        while True:
            if self._state is SmtpState.CLOSED:
                assert self._closed is not None
                return self._closed
            if self._state is SmtpState.GREETING:
                return self._ask(Connected())
            if self._state is SmtpState.STARTTLS:
                raise LocalProtocolError(
                    "STARTTLS was accepted: run the TLS handshake and call tls_established()"
                )
            try:
                result = self._step()
            except RemoteProtocolError as exc:
                if self._state is SmtpState.AUTH:
                    self._sasl = None
                    self._transition(Step.SASL_DONE)
                self._error(exc.reply)
                continue
            if result is NEED_DATA and self._eof:
                self._close(CloseReason.PEER_CLOSED, None)
                continue
            if result is not None:
                return result

    # --- decisions -------------------------------------------------------

    def accept(self, reply: Reply | None = None) -> bytes:
        """Accept the pending decision; ``reply`` (positive) replaces the default text."""
        if reply is not None and not reply.is_positive():
            raise LocalProtocolError(f"accept() needs a positive reply, got {reply}; use reject()")
        event = self._take_pending()
        if isinstance(event, Connected):
            self._transition(Step.GREET)
            self._queue(reply or Reply(220, (f"{self.hostname} ESMTP Postyard",)))
        elif isinstance(event, Helo):
            self._transition(Command.EHLO if event.extended else Command.HELO)
            self.helo_name = event.hostname
            self._end_transaction()
            self._queue(self._helo_reply(event.extended, reply))
        elif isinstance(event, StartTlsRequested):
            self._transition(Command.STARTTLS)
            self._queue(reply or R.READY_TO_START_TLS)
            # Anything pipelined behind STARTTLS came in plain text: drop it.
            self.discarded_after_starttls = len(self._buf)
            self._buf.clear()
        elif isinstance(event, AuthAttempt):
            self._finish_auth()
            self.authenticated_user = event.username
            self._queue(reply or R.AUTH_SUCCEEDED)
        elif isinstance(event, MailFrom):
            self._transition(Command.MAIL)
            self._mail = event
            self._queue(reply or R.SENDER_OK)
        elif isinstance(event, RcptTo):
            self._transition(Command.RCPT)
            self._recipients.append(event.address)
            self._queue(reply or R.RECIPIENT_OK)
        else:
            self._transition(Step.END_OF_DATA)
            self._end_transaction(completed=True)
            self._queue(reply or R.MESSAGE_ACCEPTED)
        return self.data_to_send()

    def reject(self, reply: Reply) -> bytes:
        """Refuse the pending decision with a 4xx/5xx reply; 421 and 521 also close."""
        if reply.is_positive():
            raise LocalProtocolError(f"reject() needs a 4xx or 5xx reply, got {reply}")
        event = self._take_pending()
        if isinstance(event, Connected):
            self._queue(reply)
            if reply.is_permanent() and reply.code != 521:
                self._transition(Step.REFUSE)
            else:
                self._close(CloseReason.POLICY, reply, queue=False)
        elif isinstance(event, AuthAttempt):
            self._finish_auth()
            self._error(reply)  # failed logins spend the error budget (brute force)
        elif isinstance(event, MessageData):
            self._transition(Step.END_OF_DATA)
            self._end_transaction(completed=True)
            self._queue(reply)
        else:
            self._queue(reply)
            if isinstance(event, RcptTo):
                self._count_command()  # refused recipients are not a transaction either
        if reply.code in (421, 521) and self._state is not SmtpState.CLOSED:
            self._close(CloseReason.POLICY, reply, queue=False)
        return self.data_to_send()

    def answer(self, reply: Reply | None) -> bytes:
        """accept() for None or a positive reply, reject() otherwise (for policy hooks)."""
        if reply is None or reply.is_positive():
            return self.accept(reply)
        return self.reject(reply)

    def tls_established(self) -> None:
        """The TLS handshake after STARTTLS succeeded: start over (RFC 3207 §4.2)."""
        if self._state is not SmtpState.STARTTLS:
            raise LocalProtocolError(f"tls_established() in state {self._state.name}")
        self._transition(Step.TLS_ESTABLISHED)
        self.tls_active = True
        self.helo_name = None
        self.authenticated_user = None
        self._end_transaction()
        self.discarded_after_starttls += len(self._buf)
        self._buf.clear()

    def close(self, reply: Reply | None = None, reason: CloseReason = CloseReason.LOCAL) -> bytes:
        """End the conversation on our side (idle timeout, shutdown, internal error)."""
        if self._state is not SmtpState.CLOSED:
            self._pending = None
            self._close(reason, reply)
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Replies queued so far, in order; empties the queue."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # --- reading ---------------------------------------------------------

    def _step(self) -> Event | NeedData | None:
        if self._state is SmtpState.DATA:
            return self._read_data()
        line = self._read_line()
        if line is None:
            return NEED_DATA
        if self._state is SmtpState.AUTH:
            return self._sasl_line(line)
        return self._command(line)

    def _read_line(self) -> str | None:
        limit = self.limits.max_command_line
        while True:
            lf = self._buf.find(b"\n")
            if lf < 0:
                if self._skipping_line:
                    self._buf.clear()
                elif len(self._buf) >= limit:
                    self._buf.clear()
                    self._skipping_line = True
                    raise RemoteProtocolError(R.LINE_TOO_LONG)
                return None
            raw = bytes(self._buf[: lf + 1])
            del self._buf[: lf + 1]
            if self._skipping_line:  # the tail of a line already answered 500
                self._skipping_line = False
                continue
            if len(raw) > limit:
                raise RemoteProtocolError(R.LINE_TOO_LONG)
            if not raw.endswith(b"\r\n") or b"\r" in raw[:-2]:
                raise RemoteProtocolError(R.BARE_LINE_ENDING_IN_COMMAND)
            try:
                return raw[:-2].decode("utf-8")
            except UnicodeDecodeError:
                raise RemoteProtocolError(R.INVALID_COMMAND_BYTES) from None

    def _read_data(self) -> Event | NeedData:
        reader = self._data
        assert reader is not None
        if not reader.feed(self._buf):
            return NEED_DATA
        self._data = None
        envelope = self.envelope
        assert envelope is not None
        if reader.too_big:
            reply = R.MESSAGE_TOO_BIG
        elif reader.bare_line_ending:
            reply = R.BARE_LINE_ENDING_IN_DATA
        else:
            return self._ask(MessageData(reader.content, envelope))
        self._transition(Step.END_OF_DATA)
        self._end_transaction(completed=True)
        self._queue(reply)
        return MessageRefused(reply, reader.size, envelope)

    # --- commands --------------------------------------------------------

    def _command(self, text: str) -> Event | None:
        line = parse_command_line(text)
        command, argument = line.command, line.argument
        if self._state is SmtpState.REFUSED and command is not Command.QUIT:
            raise RemoteProtocolError(R.NO_SERVICE_SEND_QUIT)
        if command is Command.QUIT:
            self._close(CloseReason.QUIT, R.BYE)
            return None
        if command in COUNTED_COMMANDS and not self._count_command():
            return None
        if next_state(self._state, command) is None:
            raise RemoteProtocolError(out_of_sequence_reply(self._state, command))
        if command is Command.EHLO or command is Command.HELO:
            return self._ask(Helo(parse_helo(argument), extended=command is Command.EHLO))
        if command is Command.STARTTLS:
            return self._starttls(argument)
        if command is Command.AUTH:
            return self._auth(argument)
        if command is Command.MAIL:
            return self._mail_from(argument)
        if command is Command.RCPT:
            return self._rcpt_to(argument)
        if command is Command.DATA:
            _no_argument(argument)
            self._transition(Command.DATA)
            self._data = DataReader(self.limits.max_message_size)
            self._queue(R.START_MAIL_INPUT)
        elif command is Command.RSET:
            _no_argument(argument)
            self._transition(Command.RSET)
            self._end_transaction()
            self._queue(R.OK)
        elif command is Command.NOOP:
            self._queue(R.OK)
        elif command is Command.VRFY:
            if not argument:
                raise RemoteProtocolError(R.VRFY_SYNTAX)
            self._queue(R.CANNOT_VRFY)
        else:
            self._queue(R.HELP)
        return None

    def _starttls(self, argument: str) -> Event:
        _no_argument(argument)
        if self.tls_active:
            raise RemoteProtocolError(R.TLS_ALREADY_ACTIVE)
        if not self.tls_available:
            raise RemoteProtocolError(R.STARTTLS_UNAVAILABLE)
        return self._ask(StartTlsRequested())

    def _mail_from(self, argument: str) -> Event:
        if self.require_auth and self.authenticated_user is None:
            raise RemoteProtocolError(R.AUTH_REQUIRED)
        path = parse_mail_from(argument)
        check_mail_parameters(path.params, max_size=self.limits.max_message_size)
        if not path.address.isascii() and "SMTPUTF8" not in path.params:
            raise RemoteProtocolError(R.NON_ASCII_ADDRESS)
        return self._ask(MailFrom(path.address, path.params))

    def _rcpt_to(self, argument: str) -> Event | None:
        if len(self._recipients) >= self.limits.max_recipients:
            self._queue(R.TOO_MANY_RECIPIENTS)
            return None
        path = parse_rcpt_to(argument)
        check_rcpt_parameters(path.params)
        assert self._mail is not None
        if not path.address.isascii() and "SMTPUTF8" not in self._mail.params:
            raise RemoteProtocolError(R.NON_ASCII_ADDRESS)
        return self._ask(RcptTo(path.address, path.params))

    # --- AUTH (RFC 4954; PLAIN RFC 4616; LOGIN draft-murchison-sasl-login) ---

    def _auth(self, argument: str) -> Event | None:
        if self.auth_mode is AuthMode.DISABLED:
            raise RemoteProtocolError(R.AUTH_UNAVAILABLE)
        if not self.auth_offered():
            raise RemoteProtocolError(R.STARTTLS_FIRST)
        if self.authenticated_user is not None:
            raise RemoteProtocolError(R.ALREADY_AUTHENTICATED)
        exchange, result = SaslExchange.start(argument)
        if isinstance(result, AuthAttempt):
            return self._ask(result)
        self._sasl = exchange
        self._transition(Step.SASL_CHALLENGE)
        self._out += result
        return None

    def _sasl_line(self, line: str) -> Event | None:
        assert self._sasl is not None
        if line == "*":
            self._sasl = None
            self._transition(Step.SASL_DONE)
            self._queue(R.AUTH_CANCELLED)
            return None
        result = self._sasl.respond(line)
        if isinstance(result, AuthAttempt):
            return self._ask(result)
        self._out += result
        return None

    def _finish_auth(self) -> None:
        self._sasl = None
        if self._state is SmtpState.AUTH:
            self._transition(Step.SASL_DONE)
        else:
            self._transition(Command.AUTH)

    # --- bookkeeping -----------------------------------------------------

    def _ask(self, event: DecisionEvent) -> DecisionEvent:
        self._pending = event
        return event

    def _take_pending(self) -> DecisionEvent:
        event = self._pending
        if event is None:
            raise LocalProtocolError("no decision is pending; call next_event() first")
        self._pending = None
        return event

    def _transition(self, trigger: Trigger) -> None:
        target = next_state(self._state, trigger)
        if target is None:
            raise LocalProtocolError(
                f"SMTP server cannot take {trigger.name} in state {self._state.name}"
            )
        self._state = target

    def _queue(self, reply: Reply) -> None:
        self._out += reply.to_bytes()

    def _error(self, reply: Reply) -> None:
        self._errors += 1
        if self._errors >= self.limits.max_errors:
            self._close(CloseReason.TOO_MANY_ERRORS, R.TOO_MANY_ERRORS)
        else:
            self._queue(reply)

    def _count_command(self) -> bool:
        """Count one command without a completed transaction; False if that closed us."""
        self._commands_without_transaction += 1
        if self._commands_without_transaction > self.limits.max_commands_without_transaction:
            self._close(CloseReason.TOO_MANY_COMMANDS, R.TOO_MANY_COMMANDS)
            return False
        return True

    def _end_transaction(self, *, completed: bool = False) -> None:
        self._mail = None
        self._recipients = []
        if completed:
            self._commands_without_transaction = 0

    def _close(self, reason: CloseReason, reply: Reply | None, *, queue: bool = True) -> None:
        if reply is not None and queue:
            self._queue(reply)
        self._transition(Step.CLOSE)
        self._closed = ConnectionClosed(reason, reply)
        self._buf.clear()
        self._data = None
        self._sasl = None

    def _helo_reply(self, extended: bool, custom: Reply | None) -> Reply:
        greeting = custom.lines[0] if custom is not None and custom.lines else self.hostname
        if not extended:
            return Reply(250, (greeting,))
        keywords = [
            f"SIZE {self.limits.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
        ]
        if self.tls_available and not self.tls_active:
            keywords.append("STARTTLS")
        if self.auth_offered() and self.authenticated_user is None:
            keywords.append("AUTH " + " ".join(SASL_MECHANISMS))
        return Reply(250, (greeting, *keywords))


def _no_argument(argument: str) -> None:
    if argument:
        raise RemoteProtocolError(R.NO_ARGUMENTS_ALLOWED)
