"""The trio adapter of the SMTP server core: sockets, TLS, deadlines, policy.

:func:`serve_smtp` listens, and for every connection drives a
:class:`~appliance.protocols.smtp_server.SmtpServerConnection`, awaiting the
injected :class:`SmtpPolicy` hooks for every decision (Postal's split of the
command handler from the socket loop). The same adapter serves the inbound
bounce server (port 25) and submission (587); only the policy and the AUTH
settings differ.

Each connection handler catches, logs and counts its own failures, so one
bad peer or one failing hook never takes the listener down; close paths
are shielded and bounded.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol

import trio

from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import (
    DEFAULT_LIMITS,
    NEED_DATA,
    AuthAttempt,
    AuthMode,
    CloseReason,
    Connected,
    ConnectionClosed,
    Helo,
    MailFrom,
    MessageData,
    MessageRefused,
    RcptTo,
    SmtpEnvelope,
    SmtpLimits,
    SmtpServerConnection,
    StartTlsRequested,
)
from appliance.protocols.smtp_server_events import DecisionEvent

logger = logging.getLogger(__name__)

RECEIVE_SIZE: Final = 64 * 1024
GOODBYE_TIMEOUT: Final = 1.0  # seconds for a last 421 when we end a conversation abnormally
CLOSE_TIMEOUT: Final = 5.0  # seconds for the TLS close_notify and the socket close


@dataclass(frozen=True, slots=True)
class SmtpSession:
    """What the policy knows about the connection when a hook is called."""

    connection_id: int
    peer_host: str
    peer_port: int
    tls: bool
    helo_name: str | None
    authenticated_user: str | None
    envelope: SmtpEnvelope | None


class SmtpPolicy(Protocol):
    """Decisions of one SMTP connection, injected by the service using the server.

    Each hook returns None to accept with the default reply, a positive Reply
    to accept with that text (e.g. ``250 2.0.0 Queued as …``), or a 4xx/5xx
    Reply to refuse; 421 and 521 also close the connection. A hook that
    raises gets the client a ``421 4.3.0`` and closes that connection only.
    """

    async def on_connect(self, session: SmtpSession) -> Reply | None: ...

    async def on_helo(self, session: SmtpSession, helo: Helo) -> Reply | None: ...

    async def on_auth(self, session: SmtpSession, attempt: AuthAttempt) -> Reply | None: ...

    async def on_mail(self, session: SmtpSession, mail: MailFrom) -> Reply | None: ...

    async def on_rcpt(self, session: SmtpSession, rcpt: RcptTo) -> Reply | None: ...

    async def on_data(self, session: SmtpSession, message: MessageData) -> Reply | None: ...


@dataclass(frozen=True, slots=True)
class SmtpServerStatistics:
    connections_open: int
    connections_total: int
    messages_accepted: int
    messages_rejected: int
    connection_failures: int
    """Connections ended by an unexpected error on our side (logged with traceback)."""
    tls_handshake_failures: int


@dataclass(slots=True)
class _Counters:
    connections_open: int = 0
    connections_total: int = 0
    messages_accepted: int = 0
    messages_rejected: int = 0
    connection_failures: int = 0
    tls_handshake_failures: int = 0


class _PeerGone(Exception):
    """The client broke the connection or stopped reading; nothing more to say."""


class SmtpServer:
    """Listening sockets and per-connection handlers; reported by :func:`serve_smtp`."""

    def __init__(
        self,
        handler_factory: Callable[[], SmtpPolicy],
        *,
        hostname: str,
        tls_context: ssl.SSLContext | None,
        limits: SmtpLimits,
        auth_mode: AuthMode,
        require_auth: bool,
    ) -> None:
        self._handler_factory = handler_factory
        self.hostname = hostname
        self.tls_context = tls_context
        self.limits = limits
        self.auth_mode = auth_mode
        self.require_auth = require_auth
        self.bound: tuple[tuple[str, int], ...] = ()
        """(host, port) of every listening socket, once listening."""
        self._ids = itertools.count(1)
        self.counters = _Counters()
        # Fail at start-up, not on the first connection, if the settings clash.
        self.new_core()

    @property
    def port(self) -> int:
        """The port of the first listening socket (what tests binding port 0 need)."""
        if not self.bound:
            raise RuntimeError("SmtpServer.port read before the server was listening")
        return self.bound[0][1]

    def statistics(self) -> SmtpServerStatistics:
        c = self.counters
        return SmtpServerStatistics(
            connections_open=c.connections_open,
            connections_total=c.connections_total,
            messages_accepted=c.messages_accepted,
            messages_rejected=c.messages_rejected,
            connection_failures=c.connection_failures,
            tls_handshake_failures=c.tls_handshake_failures,
        )

    async def serve(
        self,
        *,
        host: str | None,
        port: int,
        task_status: trio.TaskStatus[SmtpServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except PermissionError as exc:
            raise PermissionError(
                exc.errno,
                f"cannot listen on {host or '*'}:{port}: permission denied; ports below 1024 "
                "need root or CAP_NET_BIND_SERVICE (assets/postyard.service grants it), or set "
                "the listener to a higher port, e.g. POSTYARD_INBOUND_LISTEN=0.0.0.0:2525",
            ) from exc
        self.bound = tuple(_address(listener.socket.getsockname()) for listener in listeners)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, self.handle_connection, listeners))
            logger.info(
                "SMTP server listening",
                extra={"smtp_listen": [f"{h}:{p}" for h, p in self.bound]},
            )
            task_status.started(self)

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        """Serve one client to the end; never raises except for cancellation."""
        connection = _Connection(self, stream, next(self._ids))
        self.counters.connections_open += 1
        self.counters.connections_total += 1
        try:
            await connection.run()
        except _PeerGone as exc:
            logger.info("SMTP client went away: %s", exc, extra=connection.log_fields())
        except Exception:
            self.counters.connection_failures += 1
            logger.exception("SMTP connection failed", extra=connection.log_fields())
        finally:
            self.counters.connections_open -= 1
            await connection.aclose()

    def new_policy(self) -> SmtpPolicy:
        return self._handler_factory()

    def new_core(self) -> SmtpServerConnection:
        return SmtpServerConnection(
            hostname=self.hostname,
            limits=self.limits,
            tls_available=self.tls_context is not None,
            auth_mode=self.auth_mode,
            require_auth=self.require_auth,
        )


class _Connection:
    """One client: the core, its policy, and the current stream (plain or TLS)."""

    def __init__(self, server: SmtpServer, raw: trio.SocketStream, connection_id: int) -> None:
        self.server = server
        self.raw = raw
        self.stream: trio.abc.Stream = raw
        self.id = connection_id
        self.peer_host, self.peer_port = _peer(raw)
        self.core = server.new_core()
        self.policy: SmtpPolicy | None = None  # made in run(), where its failure is handled
        self.timeout = server.limits.idle_timeout
        self.send_interrupted = False

    def log_fields(self, **more: Any) -> dict[str, Any]:
        return {
            "smtp_connection_id": self.id,
            "peer_host": self.peer_host,
            "peer_port": self.peer_port,
            "smtp_state": self.core.state.value,
            **more,
        }

    def session(self) -> SmtpSession:
        core = self.core
        return SmtpSession(
            connection_id=self.id,
            peer_host=self.peer_host,
            peer_port=self.peer_port,
            tls=core.tls_active,
            helo_name=core.helo_name,
            authenticated_user=core.authenticated_user,
            envelope=core.envelope,
        )

    async def run(self) -> None:
        core = self.core
        try:
            self.policy = self.server.new_policy()
            while True:
                event = core.next_event()
                if event is NEED_DATA:
                    await self.send(core.data_to_send())
                    data = await self.receive()
                    if data is None:
                        await self.send(core.close(R.IDLE_TIMEOUT))
                        logger.info("SMTP idle timeout", extra=self.log_fields())
                        return
                    core.receive_data(data)
                elif isinstance(event, ConnectionClosed):
                    await self.send(core.data_to_send())
                    self.log_closed(event)
                    return
                elif isinstance(event, MessageRefused):
                    self.server.counters.messages_rejected += 1
                    logger.info(
                        "SMTP message refused",
                        extra=self.log_fields(smtp_reply=str(event.reply), size=event.size),
                    )
                elif isinstance(event, StartTlsRequested):
                    await self.start_tls()
                else:
                    await self.send(core.answer(await self.decide(event)))
        except trio.Cancelled:
            await self.say_goodbye(R.SHUTTING_DOWN)
            raise
        except _PeerGone:
            raise
        except Exception:
            await self.say_goodbye(R.INTERNAL_ERROR)
            raise

    async def decide(self, event: DecisionEvent) -> Reply | None:
        session = self.session()
        policy = self.policy
        assert policy is not None
        if isinstance(event, Connected):
            return await policy.on_connect(session)
        if isinstance(event, Helo):
            return await policy.on_helo(session, event)
        if isinstance(event, AuthAttempt):
            return await policy.on_auth(session, event)
        if isinstance(event, MailFrom):
            return await policy.on_mail(session, event)
        if isinstance(event, RcptTo):
            return await policy.on_rcpt(session, event)
        assert isinstance(event, MessageData), event  # StartTlsRequested is handled here
        reply = await policy.on_data(session, event)
        accepted = reply is None or reply.is_positive()
        if accepted:
            self.server.counters.messages_accepted += 1
        else:
            self.server.counters.messages_rejected += 1
        logger.info(
            "SMTP message accepted" if accepted else "SMTP message refused",
            extra=self.log_fields(
                size=event.size,
                recipients=len(event.envelope.recipients),
                smtp_reply=str(reply) if reply is not None else None,
            ),
        )
        return reply

    async def start_tls(self) -> None:
        context = self.server.tls_context
        assert context is not None  # the core only asks when tls_available
        await self.send(self.core.accept())
        if self.core.discarded_after_starttls:
            logger.warning(
                "SMTP client pipelined commands after STARTTLS; discarded (CVE-2011-0411)",
                extra=self.log_fields(discarded_bytes=self.core.discarded_after_starttls),
            )
        tls = trio.SSLStream(self.raw, context, server_side=True)
        self.stream = tls
        try:
            with trio.fail_after(self.timeout):
                await tls.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            self.server.counters.tls_handshake_failures += 1
            raise _PeerGone(f"TLS handshake failed: {exc.__cause__ or exc!r}") from exc
        self.core.tls_established()

    async def send(self, data: bytes) -> None:
        if not data:
            return
        self.send_interrupted = True
        try:
            with trio.fail_after(self.timeout):
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            raise _PeerGone(f"sending failed: {exc!r}") from exc
        self.send_interrupted = False

    async def receive(self) -> bytes | None:
        """Up to RECEIVE_SIZE bytes (b"" at end of stream); None after the idle timeout."""
        try:
            with trio.fail_after(self.timeout):
                return bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except trio.TooSlowError:
            return None
        except trio.BrokenResourceError as exc:
            raise _PeerGone(f"receiving failed: {exc!r}") from exc

    async def say_goodbye(self, reply: Reply) -> None:
        """Best effort 421 before an abnormal close; shielded and bounded. Skipped
        if a send was cut short: a reply after half a reply would be garbage."""
        if self.send_interrupted:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + GOODBYE_TIMEOUT
            try:
                await self.stream.send_all(self.core.close(reply))
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLOSE_TIMEOUT
            try:
                await self.stream.aclose()
            except trio.BrokenResourceError:
                pass
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self.raw)

    def log_closed(self, event: ConnectionClosed) -> None:
        level = logging.INFO
        if event.reason in (CloseReason.TOO_MANY_ERRORS, CloseReason.TOO_MANY_COMMANDS):
            level = logging.WARNING
        logger.log(
            level,
            "SMTP connection closed",
            extra=self.log_fields(
                smtp_close_reason=event.reason.value,
                smtp_reply=str(event.reply) if event.reply is not None else None,
                smtp_errors=self.core.errors,
            ),
        )


async def serve_smtp(
    handler_factory: Callable[[], SmtpPolicy],
    *,
    host: str | None,
    port: int,
    tls_context: ssl.SSLContext | None,
    limits: SmtpLimits = DEFAULT_LIMITS,
    hostname: str = "localhost",
    auth_mode: AuthMode = AuthMode.DISABLED,
    require_auth: bool = False,
    task_status: trio.TaskStatus[SmtpServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve SMTP on ``host:port`` until cancelled.

    ``handler_factory`` makes the policy for each connection. Once listening,
    reports the :class:`SmtpServer` (``.port``, ``.bound``, ``.statistics()``)
    through ``task_status``: ``server = await nursery.start(partial(serve_smtp, …))``.
    ``tls_context`` (server side) enables STARTTLS; None disables it.
    """
    server = SmtpServer(
        handler_factory,
        hostname=hostname,
        tls_context=tls_context,
        limits=limits,
        auth_mode=auth_mode,
        require_auth=require_auth,
    )
    await server.serve(host=host, port=port, task_status=task_status)


def _address(sockname: Any) -> tuple[str, int]:
    return str(sockname[0]), int(sockname[1])


def _peer(stream: trio.SocketStream) -> tuple[str, int]:
    try:
        return _address(stream.socket.getpeername())
    except OSError:  # the client already left
        return "unknown", 0
