"""Trio adapter for the sans-io SMTP client core: socket, TLS, a deadline on every step.

``open_smtp_connection`` connects, reads the greeting, says EHLO (HELO if
need be), upgrades with STARTTLS as the policy says, and yields an
:class:`SmtpConnection` that can send several messages (RSET between them)::

    async with open_smtp_connection("mx.example.com", 25, helo_name="out.example.net",
                                    starttls="opportunistic") as conn:
        result = await conn.send_message("bounce@example.net", ["rcpt@example.com"], raw)

Each step runs under its own deadline from :class:`SmtpTimeouts`. When a step
fails the core is told (it goes to ERROR) and a typed ``SmtpSessionError``
naming the step and the server is raised. Replies that refuse part of a
transaction are not errors: they come back in the ``TransactionResult``.

An optional ``trace`` callable (:data:`SessionTrace`) is told of every reply
read, with the step it answers, and of each completed TCP connect and TLS
handshake (reply ``None``): the relay test reports the session step by step
with it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Literal, TypeVar

import trio

from appliance.net.smtp_client_errors import (
    SmtpAuthenticationFailed,
    SmtpConnectFailed,
    SmtpConnectionLost,
    SmtpProtocolViolation,
    SmtpRejected,
    SmtpSessionError,
    SmtpTimeout,
    TlsNegotiationFailed,
    TlsUnavailable,
)
from appliance.protocols.smtp_client import SmtpClient, check_address
from appliance.protocols.smtp_client_errors import AuthUnavailable, RemoteProtocolError
from appliance.protocols.smtp_client_events import (
    AuthMechanism,
    Command,
    ConnectionClosed,
    Extensions,
    NeedData,
    ReplyReceived,
)
from appliance.protocols.smtp_client_message import prepare_message
from appliance.protocols.smtp_client_outcome import Step, TransactionResult, TransactionTally
from appliance.protocols.smtp_client_state import State
from appliance.protocols.smtp_reply import Reply

__all__ = [
    "DEFAULT_TIMEOUTS",
    "SessionTrace",
    "SmtpConnection",
    "SmtpTimeouts",
    "StartTlsPolicy",
    "connect_smtp",
    "open_smtp_connection",
]

StartTlsPolicy = Literal["opportunistic", "required", "never"]
E = TypeVar("E", bound=SmtpSessionError)
SessionTrace = Callable[[Step, Reply | None], None]
"""Told ``(step, reply)`` for each reply read, ``(step, None)`` when a connect or TLS handshake
completes (``Step.CONNECT`` for the TCP connect and implicit TLS, ``Step.STARTTLS`` after it)."""
TimeoutName = Literal["greeting", "command", "tls_handshake", "data_block", "data_end", "close"]

SECONDS = 1.0
_RECEIVE_SIZE = 65536
_BODY_CHUNK = 65536
_MAX_PIPELINE_BATCH = 16 * 1024  # bytes of commands per batch: replies can never fill buffers

_STEP_OF: dict[Command, Step] = {
    Command.GREETING: Step.GREETING,
    Command.EHLO: Step.EHLO,
    Command.HELO: Step.EHLO,
    Command.STARTTLS: Step.STARTTLS,
    Command.AUTH: Step.AUTH,
    Command.RSET: Step.RSET,
    Command.MAIL: Step.MAIL,
    Command.RCPT: Step.RCPT,
    Command.DATA: Step.DATA,
    Command.MESSAGE: Step.DATA,
    Command.NOOP: Step.MAIL,
    Command.QUIT: Step.QUIT,
}


@dataclass(frozen=True, slots=True)
class SmtpTimeouts:
    """Deadlines per step, from RFC 5321 §4.5.3.2 where it gives one (some shortened)."""

    connect: float = 30 * SECONDS  # TCP connect, all addresses together
    greeting: float = 60 * SECONDS  # the 220 banner (RFC: 5 min)
    command: float = 60 * SECONDS  # each reply to EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA...
    tls_handshake: float = 60 * SECONDS
    data_block: float = 180 * SECONDS  # each 64 KiB of the message to be accepted by the peer
    data_end: float = 600 * SECONDS  # the verdict after the final dot
    close: float = 10 * SECONDS  # QUIT's reply and the TLS close, when we leave

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"SmtpTimeouts.{field.name} must be positive")


DEFAULT_TIMEOUTS = SmtpTimeouts()
# The configuration key (appliance.config) behind each deadline, for error messages.
_SETTING_OF: dict[str, str] = {
    "connect": "smtp_connect_timeout",
    "greeting": "smtp_command_timeout",
    "command": "smtp_command_timeout",
    "tls_handshake": "smtp_command_timeout",
    "data_block": "smtp_data_timeout",
    "data_end": "smtp_data_end_timeout",
}


def _unverified_context() -> ssl.SSLContext:
    """Opportunistic TLS (RFC 7435): encrypt without authenticating, as MTAs do by default."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class SmtpConnection:
    """An open SMTP session (after greeting, EHLO and any STARTTLS). Not for concurrent use."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        core: SmtpClient,
        *,
        host: str,
        port: int,
        timeouts: SmtpTimeouts,
        pipelining: bool = True,
        trace: SessionTrace | None = None,
    ) -> None:
        self._stream = stream
        self._trace = trace
        self._core = core
        self.host = host
        self.port = port
        self._timeouts = timeouts
        self._use_pipelining = pipelining
        self._transactions = 0
        self._closed = False
        self._implicit_tls = False  # TLS from the first byte (port 465), not by STARTTLS

    @property
    def server(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def extensions(self) -> Extensions:
        return self._core.extensions

    @property
    def greeting(self) -> Reply | None:
        return self._core.greeting

    @property
    def tls_active(self) -> bool:
        return self._implicit_tls or self._core.tls_active

    @property
    def authenticated(self) -> bool:
        return self._core.authenticated

    @property
    def usable(self) -> bool:
        """True while new transactions can be started on this connection."""
        return not self._closed and self._core.state in (State.READY, State.MAIL, State.RCPT)

    def _state(self) -> State:
        """The core's state, read afresh (a method, so type checkers do not narrow it)."""
        return self._core.state

    def _error(self, kind: type[E], step: Step, detail: str, *, reply: Reply | None = None) -> E:
        return kind(step, self.host, self.port, detail, reply=reply)

    # -- Public operations --------------------------------------------------

    async def send_message(
        self, envelope_from: str, recipients: Sequence[str], message_bytes: bytes
    ) -> TransactionResult:
        """Send one message; the server's answers come back in the result.

        Raises ``LocalRefusal`` (nothing sent) if the server cannot take the
        message (SMTPUTF8 missing, over SIZE), and ``SmtpSessionError`` if the
        connection fails (timeout, closed, protocol violation).
        """
        if isinstance(recipients, str) or not recipients:
            raise ValueError("recipients must be a non-empty sequence of addresses")
        if not self.usable:
            raise self._error(
                SmtpConnectionLost,
                Step.MAIL,
                f"the connection to {self.server} is no longer usable "
                f"(state {self._core.state.name})",
            )
        check_address("sender", envelope_from)
        for recipient in recipients:
            check_address("recipient", recipient)
        message = prepare_message(message_bytes, envelope_from=envelope_from, recipients=recipients)
        self._core.check_message(message)
        needs_rset = self._transactions > 0 or self._core.state is not State.READY
        self._transactions += 1
        core = self._core
        commands: list[bytes] = [core.rset()] if needs_rset else []
        tally = TransactionTally(envelope_from)
        if self._use_pipelining and core.can_pipeline:
            commands.append(core.mail(envelope_from, message))
            commands.extend(core.rcpt(r) for r in recipients)
            commands.append(core.data())
            for batch in _batches(commands):
                await self._send(b"".join(batch), _STEP_OF[core.pending[0]])
                for _ in batch:
                    tally.record(await self._reply(Step.MAIL, "command"))
                    if core.state is State.REJECTED:
                        return tally.result()
        else:
            for command in commands:  # RSET
                await self._send(command, Step.RSET)
                tally.record(await self._reply(Step.RSET, "command"))
                if tally.failed_step() is Step.RSET:
                    return tally.result()
            await self._send(core.mail(envelope_from, message), Step.MAIL)
            tally.record(await self._reply(Step.MAIL, "command"))
            for recipient in recipients:
                if not tally.mail_ok or core.state is State.REJECTED:
                    break
                await self._send(core.rcpt(recipient), Step.RCPT)
                tally.record(await self._reply(Step.RCPT, "command"))
            if not tally.any_accepted or core.state is State.REJECTED:
                return tally.result()
            await self._send(core.data(), Step.DATA)
            tally.record(await self._reply(Step.DATA, "command"))
        if core.state is State.MESSAGE:
            # After a pipelined batch the server may say 354 with no valid
            # recipient: end the data at once (RFC 2920 §3.1).
            body = core.message(message if tally.mail_ok and tally.any_accepted else b"")
            await self._send_body(body)
            tally.record(await self._reply(Step.DATA, "data_end"))
        return tally.result()

    async def authenticate(
        self,
        username: str,
        password: str,
        *,
        mechanism: AuthMechanism | None = None,
        require_tls: bool = True,
    ) -> Reply:
        """AUTH PLAIN or LOGIN; returns the 235 reply, raises ``SmtpAuthenticationFailed``.

        Credentials are not sent without TLS unless ``require_tls=False``.
        """
        if require_tls and not self.tls_active:
            raise AuthUnavailable(
                f"refusing to send credentials to {self.server} without TLS "
                "(pass require_tls=False to allow it)"
            )
        await self._send(self._core.auth(username, password, mechanism), Step.AUTH)
        while True:
            reply = (await self._reply(Step.AUTH, "command")).reply
            if self._core.state is not State.AUTH_CHALLENGED:
                break
            await self._send(self._core.auth_response(), Step.AUTH)
        if self._core.authenticated:
            return reply
        if self._core.state is State.REJECTED:
            raise self._error(
                SmtpRejected, Step.AUTH, f"{self.server} is closing: {reply}", reply=reply
            )
        raise self._error(
            SmtpAuthenticationFailed, Step.AUTH, f"{self.server} refused AUTH: {reply}", reply=reply
        )

    async def quit(self) -> None:
        """Say QUIT (if the session allows it) and close. Never raises for the peer's faults."""
        if self._closed:
            return
        try:
            if (
                self._core.state
                in (State.GREETED, State.READY, State.MAIL, State.RCPT, State.REJECTED)
                and not self._core.pending
            ):
                await self._send(self._core.quit(), Step.QUIT, "close")
                await self._reply(Step.QUIT, "close")
        except SmtpSessionError:
            pass
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection without QUIT (after an error, or when cancelled)."""
        if self._closed:
            return
        self._closed = True
        if self._core.state is not State.CLOSED:
            self._core.send_failed()
        with trio.CancelScope(shield=True), trio.move_on_after(self._timeouts.close):
            await self._stream.aclose()  # trio closes the socket even if this is cut short

    # -- Session set-up -----------------------------------------------------

    async def _open_session(
        self, starttls: StartTlsPolicy, tls_context: ssl.SSLContext | None, server_hostname: str
    ) -> None:
        greeting = (await self._reply(Step.GREETING, "greeting")).reply
        if self._core.state is not State.GREETED:
            raise self._error(
                SmtpRejected,
                Step.GREETING,
                f"{self.server} refused the session: {greeting}",
                reply=greeting,
            )
        await self._hello()
        if self.tls_active or starttls == "never":
            return
        if not self._core.extensions.starttls:
            if starttls == "required":
                raise self._error(
                    TlsUnavailable,
                    Step.STARTTLS,
                    f"{self.server} does not offer STARTTLS and TLS is required",
                )
            return
        await self._send(self._core.starttls(), Step.STARTTLS)
        reply = (await self._reply(Step.STARTTLS, "command")).reply
        state = self._state()  # re-read: the reply moved it
        if state is not State.TLS_HANDSHAKE:
            if starttls == "required" or state is State.REJECTED:
                raise self._error(
                    TlsUnavailable,
                    Step.STARTTLS,
                    f"{self.server} refused STARTTLS: {reply}",
                    reply=reply,
                )
            return  # opportunistic: carry on in plaintext
        context = (
            tls_context
            if tls_context is not None
            else (ssl.create_default_context() if starttls == "required" else _unverified_context())
        )
        await self._start_tls(context, server_hostname, Step.STARTTLS)
        self._core.tls_established()
        await self._hello()

    async def _hello(self) -> None:
        await self._send(self._core.ehlo(), Step.EHLO)
        reply = (await self._reply(Step.EHLO, "command")).reply
        if self._core.state is State.GREETED:  # EHLO not understood: try HELO
            await self._send(self._core.helo(), Step.EHLO)
            reply = (await self._reply(Step.EHLO, "command")).reply
        if self._core.state is not State.READY:
            raise self._error(
                SmtpRejected, Step.EHLO, f"{self.server} refused EHLO: {reply}", reply=reply
            )

    async def _start_tls(self, context: ssl.SSLContext, server_hostname: str, step: Step) -> None:
        tls_stream = trio.SSLStream(self._stream, context, server_hostname=server_hostname)
        self._stream = tls_stream  # closing it closes the TCP stream below too
        seconds = self._timeouts.tls_handshake
        try:
            with trio.fail_after(seconds):
                await tls_stream.do_handshake()
            if self._trace is not None:
                self._trace(step, None)
        except trio.TooSlowError:
            self._core.send_failed()
            raise self._error(
                TlsNegotiationFailed,
                step,
                f"TLS handshake with {self.server} did not finish within {seconds:g} s "
                "(smtp_command_timeout, SmtpTimeouts.tls_handshake)",
            ) from None
        except trio.BrokenResourceError as exc:
            self._core.send_failed()
            raise self._error(
                TlsNegotiationFailed,
                step,
                f"TLS handshake with {self.server} failed: {exc.__cause__ or exc}",
            ) from exc

    # -- I/O with deadlines -------------------------------------------------

    async def _send(self, data: bytes, step: Step, timeout: TimeoutName = "command") -> None:
        seconds = getattr(self._timeouts, timeout)
        try:
            with trio.fail_after(seconds):
                await self._stream.send_all(data)
        except BaseException as exc:
            self._core.send_failed()
            translated = self._translate(exc, step, timeout, seconds, "accept our data")
            if translated is exc:
                raise
            raise translated from exc

    async def _send_body(self, body: bytes) -> None:
        view = memoryview(body)
        for start in range(0, len(view), _BODY_CHUNK):
            await self._send(bytes(view[start : start + _BODY_CHUNK]), Step.DATA, "data_block")

    async def _reply(self, step: Step, timeout: TimeoutName) -> ReplyReceived:
        """The next reply; errors name the step of the command it answers."""
        seconds = getattr(self._timeouts, timeout)
        core = self._core
        if core.pending:
            step = _STEP_OF[core.pending[0]]
        try:
            with trio.fail_after(seconds):
                while True:
                    event = core.next_event()
                    if isinstance(event, NeedData):
                        core.receive_data(await self._stream.receive_some(_RECEIVE_SIZE))
                    elif isinstance(event, ConnectionClosed):
                        raise self._error(
                            SmtpConnectionLost, step, f"{self.server} closed the connection"
                        )
                    else:
                        if self._trace is not None:
                            self._trace(_STEP_OF[event.command], event.reply)
                        return event
        except BaseException as exc:
            if core.state is not State.CLOSED:
                core.send_failed()
            translated = self._translate(exc, step, timeout, seconds, "reply")
            if translated is exc:
                raise
            raise translated from exc

    def _translate(
        self, exc: BaseException, step: Step, timeout: str, seconds: float, what: str
    ) -> BaseException:
        if isinstance(exc, trio.TooSlowError):
            setting = _SETTING_OF.get(timeout)
            knob = (
                f"the {setting} setting, SmtpTimeouts.{timeout},"
                if setting
                else f"SmtpTimeouts.{timeout}"
            )
            return self._error(
                SmtpTimeout,
                step,
                f"{self.server} did not {what} within {seconds:g} s "
                f"(raise {knob} if this server is just slow)",
            )
        if isinstance(exc, trio.BrokenResourceError):
            cause = exc.__cause__ or exc
            return self._error(
                SmtpConnectionLost, step, f"connection to {self.server} broke ({cause})"
            )
        if isinstance(exc, RemoteProtocolError):
            return self._error(
                SmtpProtocolViolation, step, f"{self.server} broke the SMTP protocol: {exc}"
            )
        return exc


def _batches(commands: list[bytes]) -> list[list[bytes]]:
    """Split a pipelined group so that no batch exceeds ``_MAX_PIPELINE_BATCH`` bytes."""
    batches: list[list[bytes]] = [[]]
    size = 0
    for command in commands:
        if batches[-1] and size + len(command) > _MAX_PIPELINE_BATCH:
            batches.append([])
            size = 0
        batches[-1].append(command)
        size += len(command)
    return batches


def _describe_connect_error(exc: OSError, server: str) -> str:
    causes: list[BaseException] = [exc]
    if isinstance(exc.__cause__, BaseExceptionGroup):
        causes = list(exc.__cause__.exceptions)
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {server}: {exc.strerror or exc}"
    if causes and all(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"connection refused by {server}"
    first = causes[0]
    reason = first.strerror if isinstance(first, OSError) and first.strerror else str(first)
    return f"cannot connect to {server}: {reason}"


async def connect_smtp(
    host: str,
    port: int = 25,
    *,
    helo_name: str,
    local_address: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    tls_server_hostname: str | None = None,
    starttls: StartTlsPolicy = "opportunistic",
    implicit_tls: bool = False,
    timeouts: SmtpTimeouts = DEFAULT_TIMEOUTS,
    pipelining: bool = True,
    max_reply_bytes: int = 64 * 1024,
    trace: SessionTrace | None = None,
) -> SmtpConnection:
    """Connect and open the session; the caller must ``quit()`` or ``aclose()`` it.

    Without ``tls_context``, opportunistic STARTTLS encrypts without checking
    the certificate (a failed check would otherwise mean plaintext), while
    ``starttls="required"`` and ``implicit_tls`` verify it against
    ``tls_server_hostname`` (default ``host``).
    """
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    core = SmtpClient(helo_name=helo_name, max_reply_bytes=max_reply_bytes)
    try:
        with trio.fail_after(timeouts.connect):
            stream = await trio.open_tcp_stream(host, port, local_address=local_address)
    except trio.TooSlowError:
        raise SmtpTimeout(
            Step.CONNECT,
            host,
            port,
            f"could not connect to {server} within {timeouts.connect:g} s (smtp_connect_timeout)",
        ) from None
    except OSError as exc:
        raise SmtpConnectFailed(
            Step.CONNECT, host, port, _describe_connect_error(exc, server)
        ) from exc
    if trace is not None:
        trace(Step.CONNECT, None)
    connection = SmtpConnection(
        stream, core, host=host, port=port, timeouts=timeouts, pipelining=pipelining, trace=trace
    )
    hostname = tls_server_hostname or host
    try:
        if implicit_tls:
            context = tls_context if tls_context is not None else ssl.create_default_context()
            await connection._start_tls(context, hostname, Step.CONNECT)
            connection._implicit_tls = True
        await connection._open_session(starttls, tls_context, hostname)
    except BaseException:
        await connection.aclose()
        raise
    return connection


@asynccontextmanager
async def open_smtp_connection(
    host: str,
    port: int = 25,
    *,
    helo_name: str,
    local_address: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    tls_server_hostname: str | None = None,
    starttls: StartTlsPolicy = "opportunistic",
    implicit_tls: bool = False,
    timeouts: SmtpTimeouts = DEFAULT_TIMEOUTS,
    pipelining: bool = True,
) -> AsyncIterator[SmtpConnection]:
    """``connect_smtp`` as an async context manager: QUIT on the way out, or close on error."""
    connection = await connect_smtp(
        host,
        port,
        helo_name=helo_name,
        local_address=local_address,
        tls_context=tls_context,
        tls_server_hostname=tls_server_hostname,
        starttls=starttls,
        implicit_tls=implicit_tls,
        timeouts=timeouts,
        pipelining=pipelining,
    )
    try:
        yield connection
    except BaseException:
        await connection.aclose()
        raise
    await connection.quit()
