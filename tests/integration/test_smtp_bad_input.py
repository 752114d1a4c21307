"""Bad input to the inbound (port 25) and submission (port 587) servers, over real sockets.

stdlib ``smtplib`` with raw ``send`` for the bytes it would not write itself:
command lines over RFC 5321's 512 octets, invalid UTF-8 and NUL in commands,
bare CR / LF in commands and in DATA (SMTP smuggling), messages over the size
limit (declared with SIZE= and at the end of DATA), text lines over 1000
octets and NUL bytes in DATA. Each gets its reply and enhanced status, the
conversation goes on, and nothing refused is stored or queued.
"""

from __future__ import annotations

import smtplib
import time
import zlib
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
import trio

from appliance.services import inbound, submission
from appliance.services.composer import Composer
from appliance.store.messages import MessageFilter
from tests.conftest import ENGINES
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.databases import fresh_database
from tests.support.sending import verified_domain

T = TypeVar("T")
DOMAIN = "mail.example.test"
BOUNCE = f"fbl@bounces.{DOMAIN}"
FROM = f"app@{DOMAIN}"
SERVERS = ["inbound", "submission"]
LIMIT = {
    "inbound": inbound.LIMITS.max_message_size,
    "submission": submission.LIMITS.max_message_size,
}


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    # Submission on loopback without a certificate: AUTH PLAIN in clear is allowed there.
    config = appliance_config(tmp_path / "data", database_url)
    async with run_appliance(config, services=("http", "inbound", "submission")) as running:
        await verified_domain(running, DOMAIN)
        yield running


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """SQLite only, except where a test asks for both engines (``both_engines``)."""
    return sqlite_url


@pytest.fixture(params=ENGINES)
async def app_any_db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RunningAppliance]:
    with fresh_database(request.param, tmp_path) as url:
        config = appliance_config(tmp_path / "data", url)
        async with run_appliance(config, services=("http", "inbound", "submission")) as running:
            await verified_domain(running, DOMAIN)
            yield running


def port(app: RunningAppliance, server: str) -> int:
    return int(app.ctx.listeners[server].rpartition(":")[2])


def connect(app: RunningAppliance, server: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port(app, server), local_hostname="client.test", timeout=60)
    smtp.ehlo()
    if server == "submission":
        smtp.login("apikey", app.api_key)
    return smtp


def raw(smtp: smtplib.SMTP, line: bytes) -> tuple[int, str]:
    smtp.send(line)
    code, text = smtp.getreply()
    return code, text.decode()


def status(reply: tuple[int, str]) -> tuple[int, str]:
    return reply[0], reply[1].split()[0]


def start_data(smtp: smtplib.SMTP, server: str) -> None:
    sender, recipient = ("", BOUNCE) if server == "inbound" else (FROM, "alice@example.org")
    assert smtp.mail(sender)[0] == 250
    assert smtp.rcpt(recipient)[0] == 250
    assert smtp.docmd("DATA")[0] == 354


async def stored(app: RunningAppliance, server: str) -> int:
    """Reports kept (inbound) or messages queued (submission)."""
    table = "inbound_reports" if server == "inbound" else "messages"
    query = sa.text(f"SELECT count(*) FROM {table}")
    return int(await app.ctx.store.db.read(lambda c: c.execute(query).scalar_one()))


async def run(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


MESSAGE = b"From: <app@mail.example.test>\r\nTo: alice@example.org\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.mark.parametrize("server", SERVERS)
async def test_command_lines_over_512_octets_are_500_5_5_2(
    app: RunningAppliance, server: str
) -> None:
    def scenario() -> list[tuple[int, str]]:
        with connect(app, server) as smtp:
            return [
                raw(smtp, b"NOOP " + b"x" * 505 + b"\r\n"),  # 512 with CRLF: the limit
                raw(smtp, b"NOOP " + b"x" * 506 + b"\r\n"),
                raw(smtp, b"RCPT TO:<" + b"a" * 70_000 + b"@example.org>\r\n"),
                raw(smtp, b"NOOP\r\n"),  # the conversation goes on
            ]

    replies = [status(r) for r in await run(scenario)]
    assert replies == [(250, "2.0.0"), (500, "5.5.2"), (500, "5.5.2"), (250, "2.0.0")]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"EHLO \xff\xfe\r\n", (500, "5.5.2")),  # invalid UTF-8
        (b"MAIL FROM:<\xc3\x28@example.org>\r\n", (500, "5.5.2")),
        (b"RCPT TO:<a@ex\xe9mple.org>\r\n", (500, "5.5.2")),  # Latin-1
        (b"NOOP\x00\r\n", (500, "5.5.1")),  # NUL
        (b"EHLO client\x00.test\r\n", (501, "5.5.4")),
        (b"MAIL FROM:<a\x00b@example.org>\r\n", (501, "5.1.7")),
        (b"RCPT TO:<alice@example.org\x00>\r\n", (501, "5.1.3")),
        (b"NOOP\n", (500, "5.5.2")),  # bare LF ends no command
        (b"NOOP\rQUIT\r\n", (500, "5.5.2")),  # bare CR inside one
    ],
)
async def test_malformed_command_bytes_are_refused_and_the_session_goes_on(
    app: RunningAppliance, server: str, line: bytes, reply: tuple[int, str]
) -> None:
    def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        with connect(app, server) as smtp:
            if line.startswith(b"RCPT"):
                sender = "" if server == "inbound" else FROM
                assert smtp.mail(sender)[0] == 250
            return raw(smtp, line), raw(smtp, b"NOOP\r\n")

    refused, after = await run(scenario)
    assert status(refused) == reply, refused
    assert status(after) == (250, "2.0.0")


@pytest.mark.parametrize("server", SERVERS)
async def test_declared_size_over_the_limit_is_552_5_3_4(
    app: RunningAppliance, server: str
) -> None:
    def scenario() -> tuple[int, str]:
        with connect(app, server) as smtp:
            sender = "<>" if server == "inbound" else f"<{FROM}>"
            return raw(smtp, f"MAIL FROM:{sender} SIZE={LIMIT[server] + 1}\r\n".encode())

    assert status(await run(scenario)) == (552, "5.3.4")


@pytest.mark.parametrize("server", SERVERS)
async def test_message_over_the_limit_is_552_5_3_4_at_the_end_of_data(
    app: RunningAppliance, server: str
) -> None:
    line = b"x" * 998 + b"\r\n"
    lines = LIMIT[server] // len(line) + 1

    def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        with connect(app, server) as smtp:
            start_data(smtp, server)
            smtp.send(MESSAGE)
            chunk = line * 1024
            for _ in range(lines // 1024 + 1):
                smtp.send(chunk)
            return raw(smtp, b".\r\n"), raw(smtp, b"NOOP\r\n")

    end, after = await run(scenario)
    assert status(end) == (552, "5.3.4"), end
    assert status(after) == (250, "2.0.0")
    assert await stored(app, server) == 0


SMUGGLED = (
    b"Subject: looks like one message\r\n\r\nfirst\r\n"
    b"\n.\n"  # ends the data for a server that reads bare LF as a line end
    b"MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nsmuggled\r\n"
)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r"])
async def test_bare_line_ending_smuggling_is_refused_550_5_6_11(
    app: RunningAppliance, server: str, end: bytes
) -> None:
    data = SMUGGLED.replace(b"\n.\n", end)

    def scenario() -> tuple[int, str]:
        with connect(app, server) as smtp:
            start_data(smtp, server)
            smtp.send(b"From: <app@mail.example.test>\r\nTo: alice@example.org\r\n" + data)
            return raw(smtp, b"\r\n.\r\n")

    assert status(await run(scenario)) == (550, "5.6.11")
    assert await stored(app, server) == 0


async def test_text_lines_over_1000_octets_are_taken_and_sent_folded(
    app: RunningAppliance,
) -> None:
    """RFC 5321 §4.5.3.1.6 lets a server take longer lines; much real mail has them.
    Inbound keeps the report as received; submission re-encodes the body it sends."""
    long_line = b"word " * 600  # 3000 octets

    def scenario(server: str) -> tuple[int, bytes]:
        with connect(app, server) as smtp:
            sender, recipient = ("", BOUNCE) if server == "inbound" else (FROM, "a@example.org")
            return smtp.sendmail(sender, [recipient], MESSAGE + long_line + b"\r\n") or (250, b"")

    await run(lambda: scenario("inbound"))
    report_raw = await app.ctx.store.db.read(
        lambda c: c.execute(sa.text("SELECT raw FROM inbound_reports")).scalar_one()
    )
    assert long_line.rstrip() in zlib.decompress(report_raw)

    await run(lambda: scenario("submission"))
    (message,) = await app.ctx.store.messages.search(app.init.tenant_id, MessageFilter(), limit=5)
    composed = await Composer(app.ctx).compose(message, now=time.time())
    assert max(len(line) for line in composed.data.split(b"\r\n")) <= 998
    sent = message_from_bytes(composed.data, policy=policy.default)
    body = sent.get_body(("plain",))
    assert body is not None and long_line.decode().strip() in body.get_content()


NUL_MESSAGE = (
    b"From: App\x00 <app@mail.example.test>\r\nTo: alice@example.org\r\n"
    b"Subject: nul\x00here\r\nX-Note: a\x00b\r\n\r\nbody\x00with nul\r\n"
)


@pytest.mark.parametrize("server", SERVERS)
async def test_nul_bytes_in_data_are_taken_and_never_reach_a_text_column(
    app_any_db: RunningAppliance, server: str
) -> None:
    """PostgreSQL text cannot hold NUL: a NUL that reached a text column would make
    every retry of the report fail (451) or the submission answer 421."""
    app = app_any_db

    def scenario() -> tuple[int, str]:
        with connect(app, server) as smtp:
            start_data(smtp, server)
            smtp.send(NUL_MESSAGE)
            return raw(smtp, b".\r\n")

    assert status(await run(scenario)) == (250, "2.0.0")
    assert await stored(app, server) == 1
    if server == "submission":
        (message,) = await app.ctx.store.messages.search(
            app.init.tenant_id, MessageFilter(), limit=5
        )
        assert "\0" not in (message.subject or "")
        composed = await Composer(app.ctx).compose(message, now=time.time())
        assert b"\0" not in composed.data
