"""The trio SMTP client against a real aiosmtpd server in a subprocess, and a hanging fake.

The sink (tests/support/smtpsink_aiosmtpd.py) writes what it accepted to a
JSON-lines file, so each test asserts what the server actually received.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.net.smtp_client import SmtpTimeouts, connect_smtp, open_smtp_connection
from appliance.net.smtp_client_errors import (
    SmtpAuthenticationFailed,
    SmtpConnectFailed,
    SmtpTimeout,
    TlsNegotiationFailed,
    TlsUnavailable,
)
from appliance.protocols.smtp_client_errors import AuthUnavailable, SmtpUtf8Unsupported
from appliance.protocols.smtp_client_outcome import Step
from tests.support.smtp_sink import StartSink

HELO = "client.test"
MESSAGE = b"From: a@example.net\r\nTo: x@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying context that trusts this self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


def tls_args(certificate: Certificate) -> tuple[str, ...]:
    return ("--cert", str(certificate.cert), "--key", str(certificate.key))


# -- Delivery ------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
async def test_several_messages_on_one_connection(start_sink: StartSink, pipelining: bool) -> None:
    sink = await start_sink(*(["--pipelining"] if pipelining else []))
    bodies = [
        MESSAGE,
        b"Subject: dots\n\n.leading dot\n..two dots\n.\nlast\n",  # bare LF, dot lines
        b"Subject: third\r\n\r\nthe end",
    ]
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        assert conn.extensions.pipelining is pipelining
        for i, body in enumerate(bodies):
            result = await conn.send_message("a@example.net", [f"r{i}@example.com"], body)
            assert result.delivered, result
            assert result.message_reply is not None
            assert result.message_reply.code == 250
            assert (result.rset_reply is None) is (i == 0)  # RSET before the 2nd and 3rd
    received = sink.received()
    assert [r["rcpt_tos"] for r in received] == [
        ["r0@example.com"],
        ["r1@example.com"],
        ["r2@example.com"],
    ]
    assert all(r["helo"] == HELO and not r["tls"] for r in received)
    assert received[0]["content"] == MESSAGE
    # aiosmtpd removed our dot-stuffing: the lines are exactly what we meant.
    assert received[1]["content"] == (
        b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast\r\n"
    )
    assert received[2]["content"] == b"Subject: third\r\n\r\nthe end\r\n"
    assert "SIZE=" + str(len(MESSAGE)) in received[0]["mail_options"]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
async def test_one_recipient_refused_the_others_get_the_message(
    start_sink: StartSink, pipelining: bool
) -> None:
    args = ["--refuse", "nobody@example.com", "--tempfail", "busy@example.com"]
    sink = await start_sink(*args, *(["--pipelining"] if pipelining else []))
    recipients = ["x@example.com", "nobody@example.com", "busy@example.com", "y@example.com"]
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        result = await conn.send_message("a@example.net", recipients, MESSAGE)
    assert result.delivered
    assert result.accepted == ("x@example.com", "y@example.com")
    refused = {r.recipient: r.reply for r in result.refused}
    assert refused["nobody@example.com"].code == 550
    assert refused["nobody@example.com"].is_permanent()
    assert refused["busy@example.com"].code == 451
    assert refused["busy@example.com"].is_transient()
    assert [r["rcpt_tos"] for r in sink.received()] == [["x@example.com", "y@example.com"]]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
async def test_every_recipient_refused_then_connection_still_delivers(
    start_sink: StartSink, pipelining: bool
) -> None:
    sink = await start_sink(
        "--refuse", "nobody@example.com", *(["--pipelining"] if pipelining else [])
    )
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        failed = await conn.send_message("a@example.net", ["nobody@example.com"], MESSAGE)
        assert failed.failed_step is Step.RCPT
        assert failed.failure is not None
        assert failed.failure.code == 550
        ok = await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)
        assert ok.delivered
    assert [r["rcpt_tos"] for r in sink.received()] == [["x@example.com"]]


async def test_refused_sender_fails_at_mail(start_sink: StartSink) -> None:
    sink = await start_sink("--pipelining", "--refuse-sender", "bad@example.net")
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        result = await conn.send_message("bad@example.net", ["x@example.com"], MESSAGE)
        assert result.failed_step is Step.MAIL
        assert result.reply_for("x@example.com") == result.mail_reply
        assert (await conn.send_message("", ["x@example.com"], MESSAGE)).delivered
    assert [r["mail_from"] for r in sink.received()] == ["<>"]  # aiosmtpd keeps <> as is


async def test_transient_reply_to_end_of_data(start_sink: StartSink) -> None:
    sink = await start_sink("--data-reply", "452 4.3.1 insufficient system storage")
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        result = await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)
    assert result.failed_step is Step.DATA
    assert result.data_reply is not None
    assert result.data_reply.code == 354
    assert result.failure is not None
    assert result.failure.is_transient()
    assert str(result.failure) == "452 4.3.1 insufficient system storage"


async def test_helo_fallback_when_ehlo_is_not_implemented(start_sink: StartSink) -> None:
    sink = await start_sink("--no-ehlo")
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        assert not conn.extensions.pipelining
        assert (await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)).delivered
    assert sink.received()[0]["mail_options"] == []  # no ESMTP parameters after HELO


async def test_8bit_and_smtputf8(start_sink: StartSink) -> None:
    body = "Subject: gr\u00fc\u00dfe\r\n\r\nna\u00efve\r\n".encode()
    plain = await start_sink()
    async with open_smtp_connection("127.0.0.1", plain.port, helo_name=HELO) as conn:
        with pytest.raises(SmtpUtf8Unsupported):
            await conn.send_message("a@example.net", ["j\u00f6rg@example.de"], body)
        eight_bit = b"Subject: x\r\n\r\nna\xc3\xafve\r\n"
        assert (await conn.send_message("a@example.net", ["x@example.com"], eight_bit)).delivered
    assert "BODY=8BITMIME" in plain.received()[0]["mail_options"]

    utf8 = await start_sink("--smtputf8")
    async with open_smtp_connection("127.0.0.1", utf8.port, helo_name=HELO) as conn:
        result = await conn.send_message("a@example.net", ["j\u00f6rg@example.de"], body)
        assert result.delivered
    received = utf8.received()[0]
    assert "SMTPUTF8" in received["mail_options"]
    assert received["rcpt_tos"] == ["j\u00f6rg@example.de"]
    assert received["content"] == body


# -- TLS -----------------------------------------------------------------------


async def test_opportunistic_starttls_upgrades(
    start_sink: StartSink, certificate: Certificate
) -> None:
    sink = await start_sink("--pipelining", *tls_args(certificate))
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        assert conn.tls_active
        assert not conn.extensions.starttls  # the EHLO after TLS no longer offers it
        assert conn.extensions.pipelining
        for _ in range(2):
            assert (await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)).delivered
    assert [r["tls"] for r in sink.received()] == [True, True]


async def test_required_starttls_verifies_the_certificate(
    start_sink: StartSink, certificate: Certificate
) -> None:
    sink = await start_sink(*tls_args(certificate))
    async with open_smtp_connection(
        "127.0.0.1",
        sink.port,
        helo_name=HELO,
        starttls="required",
        tls_context=certificate.client_context(),
        tls_server_hostname="localhost",
    ) as conn:
        assert conn.tls_active
        assert (await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)).delivered
    assert sink.received()[0]["tls"] is True


async def test_required_starttls_not_offered(start_sink: StartSink) -> None:
    sink = await start_sink()
    with pytest.raises(TlsUnavailable, match="does not offer STARTTLS") as info:
        await connect_smtp("127.0.0.1", sink.port, helo_name=HELO, starttls="required")
    assert info.value.step is Step.STARTTLS


async def test_failed_handshake_lets_caller_retry_in_plaintext(
    start_sink: StartSink, certificate: Certificate
) -> None:
    sink = await start_sink(*tls_args(certificate))
    untrusting = ssl.create_default_context()  # does not trust our self-signed certificate
    with pytest.raises(TlsNegotiationFailed, match="CERTIFICATE_VERIFY_FAILED") as info:
        await connect_smtp("127.0.0.1", sink.port, helo_name=HELO, tls_context=untrusting)
    assert info.value.step is Step.STARTTLS
    assert info.value.transient
    async with open_smtp_connection(
        "127.0.0.1", sink.port, helo_name=HELO, starttls="never"
    ) as conn:
        assert not conn.tls_active
        assert (await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)).delivered
    assert sink.received()[0]["tls"] is False


# -- AUTH ----------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_over_starttls(
    start_sink: StartSink, certificate: Certificate, mechanism: str
) -> None:
    from appliance.protocols.smtp_client_events import AuthMechanism

    sink = await start_sink("--auth", "user:s3cret", *tls_args(certificate))
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        reply = await conn.authenticate("user", "s3cret", mechanism=AuthMechanism(mechanism))
        assert reply.code == 235
        assert conn.authenticated
        assert (await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)).delivered
    assert sink.received()[0]["authenticated"] is True


async def test_auth_wrong_password(start_sink: StartSink, certificate: Certificate) -> None:
    sink = await start_sink("--auth", "user:s3cret", *tls_args(certificate))
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        with pytest.raises(SmtpAuthenticationFailed, match="535") as info:
            await conn.authenticate("user", "wrong")
        assert info.value.step is Step.AUTH
        assert not info.value.transient


async def test_auth_refuses_plaintext_unless_allowed(start_sink: StartSink) -> None:
    sink = await start_sink("--auth", "user:s3cret", "--auth-without-tls")
    async with open_smtp_connection("127.0.0.1", sink.port, helo_name=HELO) as conn:
        with pytest.raises(AuthUnavailable, match="without TLS"):
            await conn.authenticate("user", "s3cret")
        await conn.authenticate("user", "s3cret", require_tls=False)
        assert conn.authenticated


# -- Failures and deadlines ------------------------------------------------------


async def test_connection_refused_names_server_and_step() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    with pytest.raises(SmtpConnectFailed) as info:
        await connect_smtp("127.0.0.1", port, helo_name=HELO)
    assert str(info.value) == f"connection refused by 127.0.0.1:{port} during connect"
    assert info.value.step is Step.CONNECT


async def serve_hanging(greeting: bytes, ehlo_reply: bytes, task_status: Any) -> None:
    """A fake server: optionally greets and answers EHLO, then reads and never replies."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(greeting)
        if greeting:
            await stream.receive_some(1024)
            await stream.send_all(ehlo_reply)
        while await stream.receive_some(1024):
            pass

    await trio.serve_tcp(handler, 0, host="127.0.0.1", task_status=task_status)


async def test_greeting_deadline_fires_on_a_silent_server() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve_hanging, b"", b"")
        port = listeners[0].socket.getsockname()[1]
        timeouts = SmtpTimeouts(greeting=0.2)
        with trio.fail_after(5), pytest.raises(SmtpTimeout) as info:
            await connect_smtp("127.0.0.1", port, helo_name=HELO, timeouts=timeouts)
        assert info.value.step is Step.GREETING
        assert "within 0.2 s" in str(info.value)
        assert "SmtpTimeouts.greeting" in str(info.value)
        nursery.cancel_scope.cancel()


async def test_command_deadline_fires_when_server_stops_answering() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            serve_hanging, b"220 hang.test ESMTP\r\n", b"250 hang.test\r\n"
        )
        port = listeners[0].socket.getsockname()[1]
        timeouts = SmtpTimeouts(command=0.2)
        with trio.fail_after(5):
            async with open_smtp_connection(
                "127.0.0.1", port, helo_name=HELO, timeouts=timeouts
            ) as conn:
                with pytest.raises(SmtpTimeout) as info:
                    await conn.send_message("a@example.net", ["x@example.com"], MESSAGE)
                assert info.value.step is Step.MAIL
                assert not conn.usable
        nursery.cancel_scope.cancel()
