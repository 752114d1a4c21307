"""The inbound server (port 25) is not an open relay: a suite of relay attempts.

Each recipient is tried in its own transaction with stdlib ``smtplib`` against a
running appliance (SQLite and PostgreSQL), the RCPT argument sent exactly as
written (``smtplib.rcpt`` would re-quote it). Each is refused with a 5xx
(``550 5.7.1`` where the address is well formed and simply not ours), DATA
then finds no recipient, and afterwards nothing is queued (the messages
table is empty) and no report is kept.
"""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain

DOMAIN = "mail.example.test"
BOUNCES = f"bounces.{DOMAIN}"
RELAY = (550, "5.7.1")
SYNTAX = (501, "5.1.3")

ATTEMPTS = [
    # well-formed addresses that are not ours
    ("victim@other.example", RELAY),
    ("VICTIM@OTHER.EXAMPLE", RELAY),
    (f"bounces@{DOMAIN}", RELAY),  # the bounce domain's parent
    ("bounces@example.test", RELAY),  # its grandparent
    (f"bounces@{BOUNCES}.attacker.example", RELAY),  # ours as a prefix
    (f"bounces@x{BOUNCES}", RELAY),  # ours as a suffix of another label
    (f"{BOUNCES}@other.example", RELAY),
    ("victim@[127.0.0.1]", RELAY),  # IP literals
    ("victim@[IPv6:::1]", RELAY),
    # routing through our own domain
    (f"victim%other.example@{BOUNCES}", RELAY),  # the percent hack
    (f"victim%other.example@{BOUNCES.upper()}", RELAY),
    (f"victim%{BOUNCES}@other.example", RELAY),
    (f"other.example!victim@{BOUNCES}", RELAY),  # a bang path
    (f'"victim@other.example"@{BOUNCES}', RELAY),  # a quoted local part
    (f'"victim%other.example"@{BOUNCES}', RELAY),
    (f'"bounces@{BOUNCES}"@attacker.example', RELAY),
    (f"@{BOUNCES}:victim@other.example", RELAY),  # source routes (the route is dropped)
    (f"@{BOUNCES},@{DOMAIN}:victim@other.example", RELAY),
    # malformed: refused before policy is asked
    ("other.example!victim", SYNTAX),  # a bare bang path has no domain
    ("victim@other.example.", SYNTAX),  # trailing dot
    (f"victim@{BOUNCES}.", SYNTAX),
    ("victim@[127.0.0.1", SYNTAX),
    ("victim@other.example@other.example", SYNTAX),
    (f"victim@b\u043eunces.{DOMAIN}", (553, "5.6.7")),  # Cyrillic o without SMTPUTF8
]


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    config = appliance_config(tmp_path / "data", database_url)
    async with run_appliance(config, services=("http", "inbound")) as running:
        await verified_domain(running, DOMAIN)
        yield running


def _attempt(port: int, recipient: str) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("relay-tester.example")
        code, text = smtp.mail("attacker@evil.example")
        assert code == 250, text
        smtp.send(f"RCPT TO:<{recipient}>\r\n".encode())
        rcpt = smtp.getreply()
        data = smtp.docmd("DATA")
        if data[0] == 354:  # never: no recipient was taken
            smtp.send(b"Subject: relayed\r\n\r\nrelayed\r\n.\r\n")
            smtp.getreply()
        return rcpt, data


async def _count(app: RunningAppliance, table: str) -> int:
    query = sa.text(f"SELECT count(*) FROM {table}")
    return int(await app.ctx.store.db.read(lambda c: c.execute(query).scalar_one()))


async def test_relay_attempts_are_refused_and_nothing_is_queued(app: RunningAppliance) -> None:
    port = int(app.ctx.listeners["inbound"].rpartition(":")[2])
    answers = {}
    for recipient, _ in ATTEMPTS:
        answers[recipient] = await trio.to_thread.run_sync(_attempt, port, recipient)
    for recipient, (code, status) in ATTEMPTS:
        (rcpt_code, rcpt_text), (data_code, data_text) = answers[recipient]
        assert (rcpt_code, rcpt_text.decode().split()[0]) == (code, status), (
            recipient,
            rcpt_code,
            rcpt_text,
        )
        if code == 550:
            assert b"relay access denied" in rcpt_text
        assert data_code == 554 and data_text.startswith(b"5.5.1 "), (recipient, data_text)
    assert await _count(app, "messages") == 0
    assert await _count(app, "inbound_reports") == 0


async def test_our_own_bounce_addresses_are_still_taken(app: RunningAppliance) -> None:
    """The control: the refusals above are not a server that refuses everything."""
    port = int(app.ctx.listeners["inbound"].rpartition(":")[2])
    for recipient in (f"fbl@{BOUNCES}", f"Bounces+msg_01x@{BOUNCES.upper()}"):

        def attempt(recipient: str = recipient) -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                smtp.ehlo("mx.example.org")
                smtp.mail("")
                return smtp.docmd("RCPT", f"TO:<{recipient}>")

        code, text = await trio.to_thread.run_sync(attempt)
        assert code == 250, (recipient, text)
