"""The trio SMTP server on loopback, driven by stdlib ``smtplib`` in a thread."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from appliance.net.smtp_server import SmtpServer, SmtpSession, serve_smtp
from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import (
    AuthAttempt,
    AuthMode,
    Helo,
    MailFrom,
    MessageData,
    RcptTo,
    SmtpLimits,
)
from tests.support.tls_certs import TlsCertificate, make_self_signed

T = TypeVar("T")

API_KEY = "SG.good-key"
SUPPRESSED = Reply.build(550, "5.7.1", "Recipient suppressed")
MAX_SIZE = 4096


@dataclass
class Recorder:
    sessions: list[SmtpSession] = field(default_factory=list)
    auth_attempts: list[AuthAttempt] = field(default_factory=list)
    messages: list[MessageData] = field(default_factory=list)


class RecordingPolicy:
    """A small policy: one API key, recipients at refused.example suppressed,
    a sender that makes the hook crash."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def on_connect(self, session: SmtpSession) -> Reply | None:
        self.recorder.sessions.append(session)
        return None

    async def on_helo(self, session: SmtpSession, helo: Helo) -> Reply | None:
        return None

    async def on_auth(self, session: SmtpSession, attempt: AuthAttempt) -> Reply | None:
        self.recorder.auth_attempts.append(attempt)
        if attempt.username == "apikey" and attempt.password == API_KEY:
            return None
        return R.AUTH_FAILED

    async def on_mail(self, session: SmtpSession, mail: MailFrom) -> Reply | None:
        if mail.address == "crash@example.com":
            raise RuntimeError("policy store unavailable")
        return None

    async def on_rcpt(self, session: SmtpSession, rcpt: RcptTo) -> Reply | None:
        if rcpt.address.endswith("@refused.example"):
            return SUPPRESSED
        return None

    async def on_data(self, session: SmtpSession, message: MessageData) -> Reply | None:
        self.recorder.messages.append(message)
        return None


@dataclass
class Running:
    server: SmtpServer
    recorder: Recorder
    cert: TlsCertificate

    @property
    def port(self) -> int:
        return self.server.port

    def connect(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=10)

    def client_context(self) -> ssl.SSLContext:
        return self.cert.client_context()


async def start(
    nursery: trio.Nursery, tmp_path: Path, *, limits: SmtpLimits | None = None
) -> Running:
    cert = make_self_signed(tmp_path / "tls", hostname="localhost")
    recorder = Recorder()
    server = await nursery.start(
        partial(
            serve_smtp,
            lambda: RecordingPolicy(recorder),
            host="127.0.0.1",
            port=0,
            tls_context=cert.server_context(),
            limits=limits or SmtpLimits(max_message_size=MAX_SIZE),
            hostname="mx.postyard.test",
            auth_mode=AuthMode.AFTER_TLS,
        )
    )
    assert isinstance(server, SmtpServer)
    return Running(server, recorder, cert)


@pytest.fixture
async def running(nursery: trio.Nursery, tmp_path: Path) -> Running:
    return await start(nursery, tmp_path)


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def reply_of(code: int, text: bytes | str) -> Reply:
    """A Reply from what smtplib returns (code, text with continuation lines joined by \\n)."""
    if isinstance(text, bytes):
        text = text.decode()
    return Reply.from_lines(code, text.split("\n"))


async def test_server_reports_its_port_once_listening(running: Running) -> None:
    assert running.port > 0
    assert running.server.bound == (("127.0.0.1", running.port),)


async def test_ehlo_features_before_and_after_starttls(running: Running) -> None:
    def talk() -> tuple[dict[str, str], dict[str, str], int]:
        with running.connect() as smtp:
            smtp.ehlo()
            before = dict(smtp.esmtp_features)
            code, _ = smtp.starttls(context=running.client_context())
            smtp.ehlo()
            return before, dict(smtp.esmtp_features), code

    before, after, starttls_code = await in_thread(talk)
    assert before["size"] == str(MAX_SIZE)
    for keyword in ("8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes", "starttls"):
        assert keyword in before
    assert "auth" not in before  # AUTH only after TLS
    assert starttls_code == R.READY_TO_START_TLS.code
    assert "starttls" not in after
    assert after["auth"].split() == ["PLAIN", "LOGIN"]


async def test_auth_before_starttls_is_refused(running: Running) -> None:
    def talk() -> tuple[int, bytes]:
        with running.connect() as smtp:
            smtp.ehlo()
            return smtp.docmd("AUTH", "PLAIN")

    code, text = await in_thread(talk)
    assert reply_of(code, text) == R.STARTTLS_FIRST


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("initial_response", [True, False])
async def test_auth_success(running: Running, mechanism: str, initial_response: bool) -> None:
    def talk() -> tuple[int, bytes]:
        with running.connect() as smtp:
            smtp.starttls(context=running.client_context())
            smtp.ehlo()
            smtp.user, smtp.password = "apikey", API_KEY
            method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
            return smtp.auth(mechanism, method, initial_response_ok=initial_response)

    code, text = await in_thread(talk)
    assert reply_of(code, text) == R.AUTH_SUCCEEDED
    [attempt] = running.recorder.auth_attempts
    assert (attempt.mechanism, attempt.username, attempt.password) == (mechanism, "apikey", API_KEY)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_failure_is_535(running: Running, mechanism: str) -> None:
    def talk() -> smtplib.SMTPAuthenticationError:
        with running.connect() as smtp:
            smtp.starttls(context=running.client_context())
            smtp.ehlo()
            smtp.user, smtp.password = "apikey", "SG.wrong"
            method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                smtp.auth(mechanism, method)
            return info.value

    error = await in_thread(talk)
    assert reply_of(error.smtp_code, error.smtp_error) == R.AUTH_FAILED


async def test_message_is_handed_to_the_policy_dot_unstuffed(running: Running) -> None:
    body = (
        b"From: a@example.com\r\nTo: b@example.net\r\nSubject: dots\r\n\r\n"
        b".leading dot\r\n..two dots\r\n.\r\nlast line"
    )

    def talk() -> dict[str, tuple[int, bytes]]:
        with running.connect() as smtp:
            smtp.starttls(context=running.client_context())
            smtp.login("apikey", API_KEY)
            return smtp.sendmail("a@example.com", ["b@example.net", "c@example.net"], body)

    refused = await in_thread(talk)
    assert refused == {}
    [message] = running.recorder.messages
    # smtplib dot-stuffs on the wire and ends the last line with CRLF.
    assert message.data == body + b"\r\n"
    assert message.envelope.mail_from == "a@example.com"
    assert message.envelope.recipients == ("b@example.net", "c@example.net")
    assert message.envelope.mail_params["SIZE"] == str(len(body))
    stats = running.server.statistics()
    assert stats.messages_accepted == 1
    assert stats.connections_total == 1


async def test_refused_recipient_is_reported_and_left_out(running: Running) -> None:
    def talk() -> dict[str, tuple[int, bytes]]:
        with running.connect() as smtp:
            return smtp.sendmail(
                "a@example.com", ["ok@example.net", "gone@refused.example"], b"Subject: x\r\n\r\nx"
            )

    refused = await in_thread(talk)
    assert list(refused) == ["gone@refused.example"]
    assert reply_of(*refused["gone@refused.example"]) == SUPPRESSED
    [message] = running.recorder.messages
    assert message.envelope.recipients == ("ok@example.net",)


async def test_oversize_message_is_refused_at_mail_and_at_end_of_data(running: Running) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * (MAX_SIZE + 1)

    def talk() -> tuple[smtplib.SMTPSenderRefused, tuple[int, bytes], tuple[int, bytes]]:
        with running.connect() as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                smtp.sendmail("a@example.com", ["b@example.net"], big)  # declares SIZE=
            smtp.rset()
            smtp.mail("a@example.com")  # no SIZE: found out while reading the data
            smtp.rcpt("b@example.net")
            at_data = smtp.data(big)
            return info.value, at_data, smtp.noop()

    at_mail, at_data, noop = await in_thread(talk)
    assert reply_of(at_mail.smtp_code, at_mail.smtp_error) == R.MESSAGE_TOO_BIG
    assert reply_of(*at_data) == R.MESSAGE_TOO_BIG
    assert reply_of(*noop) == R.OK  # the connection is still usable
    assert running.recorder.messages == []
    assert running.server.statistics().messages_rejected == 1


async def test_policy_crash_answers_421_and_the_listener_survives(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    def crash() -> smtplib.SMTPSenderRefused | smtplib.SMTPServerDisconnected:
        with running.connect() as smtp:
            smtp.ehlo()
            try:
                smtp.sendmail("crash@example.com", ["b@example.net"], b"x")
            except (smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected) as exc:
                return exc
            raise AssertionError("the crashing hook was not reported")

    with caplog.at_level(logging.ERROR, logger="appliance.net.smtp_server"):
        error = await in_thread(crash)
    assert isinstance(error, smtplib.SMTPSenderRefused)
    assert reply_of(error.smtp_code, error.smtp_error) == R.INTERNAL_ERROR
    failure = next(r for r in caplog.records if r.getMessage() == "SMTP connection failed")
    assert failure.exc_info is not None
    assert getattr(failure, "smtp_connection_id", None) == 1

    def send_again() -> dict[str, tuple[int, bytes]]:
        with running.connect() as smtp:
            return smtp.sendmail("a@example.com", ["b@example.net"], b"Subject: ok\r\n\r\nok")

    assert await in_thread(send_again) == {}
    stats = running.server.statistics()
    assert stats.connection_failures == 1
    assert stats.connections_total == 2
    assert stats.messages_accepted == 1


async def test_idle_client_gets_421_4_4_2(nursery: trio.Nursery, tmp_path: Path) -> None:
    running = await start(nursery, tmp_path, limits=SmtpLimits(idle_timeout=0.3))
    stream = await trio.open_tcp_stream("127.0.0.1", running.port)
    async with stream:
        received = b""
        with trio.fail_after(5):
            while not received.endswith(b"closing connection\r\n"):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                received += chunk
    assert received.endswith(R.IDLE_TIMEOUT.to_bytes())
    assert received.startswith(b"220 mx.postyard.test ESMTP")


async def test_starttls_injection_is_not_executed(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """CVE-2011-0411: a command sent in plain text with STARTTLS never runs."""
    stream = await trio.open_tcp_stream("127.0.0.1", running.port)
    async with stream:
        with trio.fail_after(5):
            buffer = b""

            async def read_reply(s: trio.abc.Stream) -> bytes:
                nonlocal buffer
                while b"\r\n" not in buffer or not _complete(buffer):
                    buffer += await s.receive_some(4096)
                reply, buffer = buffer, b""
                return reply

            assert (await read_reply(stream)).startswith(b"220 ")
            await stream.send_all(b"EHLO client.test\r\n")
            await read_reply(stream)
            with caplog.at_level(logging.WARNING, logger="appliance.net.smtp_server"):
                await stream.send_all(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\n")
                assert await read_reply(stream) == R.READY_TO_START_TLS.to_bytes()
                tls = trio.SSLStream(stream, running.client_context(), server_hostname="localhost")
                await tls.do_handshake()
                await tls.send_all(b"MAIL FROM:<a@example.com>\r\n")
                # No 250 for the injected MAIL: the session restarted, EHLO is needed.
                assert await read_reply(tls) == R.HELO_FIRST.to_bytes()
                await tls.send_all(b"QUIT\r\n")
                assert await read_reply(tls) == R.BYE.to_bytes()
    assert any("STARTTLS" in r.getMessage() for r in caplog.records)


def _complete(buffer: bytes) -> bool:
    """True when ``buffer`` ends with the last line of a reply (``ddd `` form)."""
    last = buffer.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
    return buffer.endswith(b"\r\n") and last[3:4] in (b" ", b"")


async def test_shutdown_says_421_to_connected_clients(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server_scope = trio.CancelScope()

    async def serve_until_shutdown(*, task_status: trio.TaskStatus[Running]) -> None:
        with server_scope:
            async with trio.open_nursery() as server_nursery:
                task_status.started(await start(server_nursery, tmp_path))
                await trio.sleep_forever()

    running: Running = await nursery.start(serve_until_shutdown)
    stream = await trio.open_tcp_stream("127.0.0.1", running.port)
    async with stream:
        with trio.fail_after(5):
            greeting = await stream.receive_some(4096)
            assert greeting.startswith(b"220 ")
            server_scope.cancel()
            rest = b""
            while chunk := await stream.receive_some(4096):
                rest += chunk
    assert rest == R.SHUTTING_DOWN.to_bytes()
    assert running.server.statistics().connections_open == 0
