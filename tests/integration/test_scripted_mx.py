"""The scripted recipient MX (tests/support/scripted_mx.py) does what its table says.

Each behaviour is driven with the stdlib's smtplib (in a worker thread), an
SMTP client independent of ours; the files the server writes are checked too,
since the delivery engine's tests rely on them.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from tests.support.mx_fixtures import (
    SCRIPT,
    ScriptedMx,
    ScriptedMxStartupError,
    run_scripted_mx,
    scripted_mx,  # noqa: F401
    scripted_mx_tls,  # noqa: F401
)

T = TypeVar("T")
SENDER = "sender@postyard.test"
EHLO = "client.postyard.test"
MESSAGE = b"Subject: hello\r\n\r\n.leading dot\r\nLatin-1: \xe9\r\n"


def _client(mx: ScriptedMx, **kwargs: Any) -> smtplib.SMTP:
    smtp = smtplib.SMTP(mx.host, mx.port, local_hostname=EHLO, timeout=5, **kwargs)
    smtp.ehlo()
    return smtp


async def _in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def _local_port(smtp: smtplib.SMTP) -> int:
    assert smtp.sock is not None
    return int(smtp.sock.getsockname()[1])


def _events(mx: ScriptedMx, event: str) -> list[dict[str, Any]]:
    return [e for e in mx.log() if e["event"] == event]


async def test_a_plain_recipient_is_accepted_and_recorded(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> tuple[tuple[int, bytes], tuple[int, bytes], int]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            rcpt = smtp.rcpt("alice@example.test")
            return rcpt, smtp.data(MESSAGE), _local_port(smtp)

    rcpt, data, local_port = await _in_thread(converse)
    assert rcpt == (250, b"2.1.5 OK")
    assert data == (250, b"2.0.0 Ok: queued")
    (record,) = await scripted_mx.wait_received(1)
    assert record["mail_from"] == SENDER
    assert record["rcpt_tos"] == ["alice@example.test"]
    assert record["data"].encode("latin-1") == MESSAGE
    assert record["ehlo"] == EHLO
    assert record["tls"] is False
    assert record["peer"] == {"address": "127.0.0.1", "port": local_port}
    assert record["connection"] == 1
    assert isinstance(record["time"], float)
    (rcpt_event,) = _events(scripted_mx, "rcpt")
    assert rcpt_event["recipient"] == "alice@example.test"
    assert rcpt_event["reply"] == "250 2.1.5 OK"
    assert rcpt_event["behaviour"] == "accept"


async def test_ehlo_offers_pipelining_and_no_starttls_without_a_certificate(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def features() -> dict[str, str]:
        with _client(scripted_mx) as smtp:
            return dict(smtp.esmtp_features)

    offered = await _in_thread(features)
    assert "pipelining" in offered
    assert "starttls" not in offered


REFUSALS = [
    ("tempfail-1@example.test", 451, "4.3.0 Temporary local problem, try again later"),
    (
        "unknown.user@example.test",
        550,
        "5.1.1 <unknown.user@example.test>: Recipient address rejected: User unknown",
    ),
    ("disabled@example.test", 550, "5.2.1 mailbox disabled"),
    ("Full@example.test", 552, "5.2.2 Mailbox full"),
    ("blocked7@example.test", 550, "5.7.1 Message rejected due to local policy"),
    (
        "dmarc@example.test",
        550,
        "5.7.26 Unauthenticated email is not accepted due to the sender's DMARC policy",
    ),
]


@pytest.mark.parametrize(("recipient", "code", "text"), REFUSALS)
async def test_refused_recipients_get_their_reply_on_every_attempt(
    scripted_mx: ScriptedMx,  # noqa: F811
    recipient: str,
    code: int,
    text: str,
) -> None:
    def two_attempts() -> list[tuple[int, bytes]]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            first = smtp.rcpt(recipient)
            smtp.rset()
            smtp.mail(SENDER)
            return [first, smtp.rcpt(recipient)]

    assert await _in_thread(two_attempts) == [(code, text.encode())] * 2
    assert [e["reply"] for e in _events(scripted_mx, "rcpt")] == [f"{code} {text}"] * 2
    assert scripted_mx.received() == []


async def test_greylisting_refuses_each_address_once_then_accepts(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    greylisted = (451, b"4.7.1 Greylisted, please try again later")

    def attempt(recipient: str) -> tuple[int, bytes]:
        with _client(scripted_mx) as smtp:  # a new connection: the state is per address
            smtp.mail(SENDER)
            reply = smtp.rcpt(recipient)
            if reply[0] == 250:
                smtp.data(MESSAGE)
            return reply

    assert await _in_thread(lambda: attempt("greylist@example.test")) == greylisted
    assert await _in_thread(lambda: attempt("greylist-other@example.test")) == greylisted
    assert await _in_thread(lambda: attempt("greylist@example.test")) == (250, b"2.1.5 OK")
    (record,) = await scripted_mx.wait_received(1)
    assert record["rcpt_tos"] == ["greylist@example.test"]


async def test_recipients_of_one_transaction_are_decided_one_by_one(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    recipients = [
        "one@example.test",
        "unknown@example.test",
        "greylist-batch@example.test",
        "full@example.test",
        "two@example.test",
    ]

    def converse() -> tuple[list[int], int]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            codes = [smtp.rcpt(r)[0] for r in recipients]
            return codes, smtp.data(MESSAGE)[0]

    assert await _in_thread(converse) == ([250, 550, 451, 552, 250], 250)
    (record,) = await scripted_mx.wait_received(1)
    assert record["rcpt_tos"] == ["one@example.test", "two@example.test"]
    decisions = [(e["recipient"], int(e["reply"][:3])) for e in _events(scripted_mx, "rcpt")]
    assert decisions == list(zip(recipients, [250, 550, 451, 552, 250], strict=True))


async def test_slowdown_replies_421_and_closes_the_connection(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> tuple[tuple[int, bytes], str]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            reply = smtp.rcpt("slowdown@example.test")
            with pytest.raises(smtplib.SMTPServerDisconnected) as closed:
                smtp.noop()
            return reply, str(closed.value)

    reply, closed = await _in_thread(converse)
    assert reply == (421, b"4.7.0 Too many messages, slow down")
    assert closed.startswith("Connection unexpectedly closed")


async def test_drop_closes_the_connection_without_a_reply(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> str:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            with pytest.raises(smtplib.SMTPServerDisconnected) as closed:
                smtp.rcpt("drop@example.test")
            return str(closed.value)

    # An orderly close (FIN), not a reset: the reply simply never comes.
    assert await _in_thread(converse) == "Connection unexpectedly closed"
    (rcpt_event,) = _events(scripted_mx, "rcpt")
    assert (rcpt_event["behaviour"], rcpt_event["reply"]) == ("drop", None)


async def test_garbage_answers_rcpt_with_a_line_that_is_not_smtp(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> tuple[int, bytes]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            return smtp.rcpt("garbage@example.test")

    # smtplib's reading of "HELLO?? not smtp": no code (-1), text after 4 characters.
    assert await _in_thread(converse) == (-1, b"O?? not smtp")
    (rcpt_event,) = _events(scripted_mx, "rcpt")
    assert rcpt_event["reply"] == "HELLO?? not smtp"


async def test_rejectdata_accepts_rcpt_and_rejects_the_content(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> tuple[list[int], tuple[int, bytes]]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            codes = [smtp.rcpt(r)[0] for r in ("ok@example.test", "rejectdata@example.test")]
            return codes, smtp.data(MESSAGE)

    codes, data = await _in_thread(converse)
    assert codes == [250, 250]
    assert data == (554, b"5.6.0 Message content rejected")
    assert scripted_mx.received() == []
    (data_event,) = _events(scripted_mx, "data")
    assert data_event["recipients"] == ["ok@example.test", "rejectdata@example.test"]
    assert data_event["reply"] == "554 5.6.0 Message content rejected"


async def test_hang_never_answers_the_end_of_data(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> tuple[int, str]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            code = smtp.rcpt("hang@example.test")[0]
            assert smtp.sock is not None
            smtp.sock.settimeout(0.5)  # the client gives up
            with pytest.raises(smtplib.SMTPServerDisconnected) as gave_up:
                smtp.data(MESSAGE)
            return code, str(gave_up.value)

    code, gave_up = await _in_thread(converse)
    assert code == 250
    assert gave_up == "Connection unexpectedly closed: timed out"
    assert scripted_mx.received() == []
    (data_event,) = _events(scripted_mx, "data")
    assert (data_event["behaviour"], data_event["reply"]) == ("hang", None)


async def test_resetdata_resets_the_connection_after_the_data(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def converse() -> tuple[int, str]:
        with _client(scripted_mx) as smtp:
            smtp.mail(SENDER)
            code = smtp.rcpt("resetdata@example.test")[0]
            with pytest.raises(smtplib.SMTPServerDisconnected) as reset:
                smtp.data(MESSAGE)
            return code, str(reset.value)

    code, reset = await _in_thread(converse)
    assert code == 250
    assert "Connection reset by peer" in reset
    assert scripted_mx.received() == []


async def test_the_log_shows_connection_reuse(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def two_connections() -> None:
        with _client(scripted_mx) as smtp:
            smtp.sendmail(SENDER, ["a@example.test"], MESSAGE)
            smtp.sendmail(SENDER, ["b@example.test"], MESSAGE)
        with _client(scripted_mx) as smtp:
            smtp.sendmail(SENDER, ["c@example.test"], MESSAGE)

    await _in_thread(two_connections)
    received = await scripted_mx.wait_received(3)
    assert [(r["connection"], r["rcpt_tos"]) for r in received] == [
        (1, ["a@example.test"]),
        (1, ["b@example.test"]),
        (2, ["c@example.test"]),
    ]
    assert [e["connection"] for e in _events(scripted_mx, "connect")] == [1, 2]


async def test_the_source_address_of_the_client_is_recorded(
    scripted_mx: ScriptedMx,  # noqa: F811
) -> None:
    def from_second_loopback_address() -> int:
        with _client(scripted_mx, source_address=("127.0.0.2", 0)) as smtp:
            smtp.sendmail(SENDER, ["src@example.test"], MESSAGE)
            return _local_port(smtp)

    local_port = await _in_thread(from_second_loopback_address)
    (record,) = await scripted_mx.wait_received(1)
    assert record["peer"] == {"address": "127.0.0.2", "port": local_port}
    (connect,) = _events(scripted_mx, "connect")
    assert connect["peer"] == record["peer"]


async def test_starttls_is_offered_with_a_certificate_and_recorded(
    scripted_mx_tls: ScriptedMx,  # noqa: F811
) -> None:
    mx = scripted_mx_tls
    assert mx.certificate is not None
    context = mx.certificate.client_context()

    def converse() -> tuple[dict[str, str], dict[str, str]]:
        with _client(mx) as smtp:
            before = dict(smtp.esmtp_features)
            smtp.starttls(context=context)
            smtp.ehlo()
            after = dict(smtp.esmtp_features)
            smtp.sendmail(SENDER, ["secure@example.test"], MESSAGE)
        with _client(mx) as smtp:  # STARTTLS is offered, not required
            smtp.sendmail(SENDER, ["plain@example.test"], MESSAGE)
        return before, after

    before, after = await _in_thread(converse)
    assert "starttls" in before
    assert "pipelining" in before
    assert "starttls" not in after
    received = await mx.wait_received(2)
    assert [(r["rcpt_tos"], r["tls"]) for r in received] == [
        (["secure@example.test"], True),
        (["plain@example.test"], False),
    ]
    assert received[0]["ehlo"] == EHLO
    assert [e["connection"] for e in _events(mx, "starttls")] == [1]


async def test_a_server_that_cannot_listen_fails_with_its_stderr(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this host: bind() fails.
    with pytest.raises(ScriptedMxStartupError) as failed:
        async with run_scripted_mx(tmp_path, host="192.0.2.1"):
            pass
    message = str(failed.value)
    assert "exited with status 1 before listening on 192.0.2.1" in message
    assert "scripted_mx: cannot listen on 192.0.2.1:" in message
    assert "cannot assign requested address" in message


async def test_a_server_that_does_not_start_in_time_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ScriptedMxStartupError, match=r"did not print 'PORT <n>' within 0 s"):
        async with run_scripted_mx(tmp_path, startup_timeout=0):
            pass


class _TestBodyFailed(Exception):
    pass


async def test_the_server_is_stopped_when_the_test_body_fails(tmp_path: Path) -> None:
    started: list[ScriptedMx] = []

    async def failing_test_body() -> None:
        async with run_scripted_mx(tmp_path) as mx:
            started.append(mx)
            raise _TestBodyFailed

    with pytest.raises(_TestBodyFailed):
        await failing_test_body()
    (mx,) = started
    assert mx.process is not None
    assert mx.process.returncode is not None


async def test_the_server_exits_when_its_parent_closes_stdin(tmp_path: Path) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), "--output", str(tmp_path / "r.jsonl"), "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        with trio.fail_after(15):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(256)
                assert chunk, "the server exited before listening"
                line += chunk
            assert line.startswith(b"PORT ")
            await process.stdin.aclose()
            assert await process.wait() == 0
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await process.stdout.aclose()
            await process.stdin.aclose()
