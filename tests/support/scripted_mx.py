"""A scripted recipient MX for the delivery engine's tests: aiosmtpd in a subprocess.

    python scripted_mx.py --output received.jsonl [--tls-cert C --tls-key K] [--host 127.0.0.1]
                          [--port N] [--hang-after-greeting] [--exit-on-stdin-eof]

Listens on ``--host`` (default 127.0.0.1; clients bound to other loopback
addresses such as 127.0.0.2 connect fine), ``--port`` (default: chosen by
the OS; the same port on ::1 as another instance on 127.0.0.1 gives a second
MX host for the same ``smtp_port``), prints
``PORT <n>`` on stdout once listening and runs until terminated (or, with
``--exit-on-stdin-eof``, until its stdin closes: the test process died).
EHLO advertises PIPELINING, SIZE, 8BITMIME, and STARTTLS when a certificate
is given (not required). With ``--hang-after-greeting`` every connection gets
the 220 greeting and then no answer to anything (a server that accepts and
hangs).

What a recipient gets is chosen by how its local part starts (case-insensitive):

  local part     at RCPT                                      at end of DATA
  -------------  -------------------------------------------  ---------------------------
  (other)        250 2.1.5 OK                                 250 2.0.0 Ok: queued, recorded
  greylist…      1st attempt for the address:                 as (other)
                 451 4.7.1 Greylisted, please try again later
                 (the process remembers it), later: 250
  tempfail…      451 4.3.0 Temporary local problem, try again later (always)
  unknown…       550 5.1.1 <addr>: Recipient address rejected: User unknown
  disabled…      550 5.2.1 mailbox disabled
  full…          552 5.2.2 Mailbox full
  blocked…       550 5.7.1 Message rejected due to local policy
  dmarc…         550 5.7.26 Unauthenticated email is not accepted due to the
                 sender's DMARC policy
  slowdown…      421 4.7.0 Too many messages, slow down, then the server closes
  drop…          no reply: the server closes the connection
  garbage…       "HELLO?? not smtp" (not an SMTP reply)
  malformed…     a multi-line reply whose lines disagree:
                 "250-2.1.5 OK" then "550 5.0.0 …" (RFC 5321 §4.2.1 violation)
  rejectdata…    250 2.1.5 OK                                 554 5.6.0 Message content rejected
  hang…          250 2.1.5 OK                                 never answers (until the client
                                                              leaves or aiosmtpd's 300 s timeout)
  resetdata…     250 2.1.5 OK                                 TCP reset (RST), no reply
  resetmid…      250 2.1.5 OK                                 354, then a TCP reset (RST)
                                                              after the first line of data

Each RCPT is decided on its own; the DATA verdict applies to the whole
transaction: the first of resetmid, resetdata, hang, rejectdata among the
accepted recipients wins, otherwise the message is accepted.

Files (JSON lines, appended; a reader must ignore an unfinished last line):

- ``--output``: one line per accepted message: ``connection`` (1, 2, … per
  TCP connection), ``peer`` ``{"address", "port"}``, ``tls``, ``ehlo``,
  ``mail_from``, ``mail_options``, ``rcpt_tos``, ``data`` (the content after
  dot-unstuffing, bytes decoded as latin-1 so ``data.encode("latin-1")``
  gives them back), ``time``.
- ``<output>.log``: one line per event with ``event``, ``connection``,
  ``peer`` and ``time``: ``connect``, ``starttls``, ``rcpt`` (``recipient``,
  ``behaviour``, ``reply``; reply null for drop), ``data`` (``recipients``,
  ``behaviour``, ``reply``; null when none is sent), ``hang`` (after the
  greeting, with ``--hang-after-greeting``), ``disconnect``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import ssl
import struct
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from aiosmtpd.smtp import SMTP, Envelope, Session

ACCEPT = "accept"
OK_RCPT = "250 2.1.5 OK"
OK_DATA = "250 2.0.0 Ok: queued"
GREYLISTED = "451 4.7.1 Greylisted, please try again later"
SLOW_DOWN = "421 4.7.0 Too many messages, slow down"
GARBAGE = "HELLO?? not smtp"
CONTENT_REJECTED = "554 5.6.0 Message content rejected"
MALFORMED = "250-2.1.5 OK\r\n550 5.0.0 this line's code disagrees with the first"

# Recipients refused at RCPT with a fixed reply ({address} is filled in).
REFUSALS = {
    "tempfail": "451 4.3.0 Temporary local problem, try again later",
    "unknown": "550 5.1.1 <{address}>: Recipient address rejected: User unknown",
    "disabled": "550 5.2.1 mailbox disabled",
    "full": "552 5.2.2 Mailbox full",
    "blocked": "550 5.7.1 Message rejected due to local policy",
    "dmarc": "550 5.7.26 Unauthenticated email is not accepted due to the sender's DMARC policy",
}
# Recipients accepted at RCPT whose transaction fails after the data, by precedence.
DATA_FAILURES = ("resetmid", "resetdata", "hang", "rejectdata")
BEHAVIOURS = (*REFUSALS, "greylist", "slowdown", "drop", "garbage", "malformed", *DATA_FAILURES)


def behaviour_of(address: str) -> str:
    local_part = address.rpartition("@")[0] or address
    local_part = local_part.strip('"').lower()
    return next((b for b in BEHAVIOURS if local_part.startswith(b)), ACCEPT)


class Script:
    """The aiosmtpd handler, shared by all connections (so greylisting spans them)."""

    def __init__(self, output: Path, *, hang_after_greeting: bool = False) -> None:
        self.output = output
        self.hang_after_greeting = hang_after_greeting
        self.log_path = Path(f"{output}.log")
        self.greylisted: set[str] = set()
        self.connection_ids = itertools.count(1)

    def log(self, server: ScriptedSMTP, event: str, **fields: Any) -> None:
        line = {
            "event": event,
            "connection": server.connection_id,
            "peer": _peer(server.session),
            "time": time.time(),
            **fields,
        }
        _append(self.log_path, line)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses

    def handle_STARTTLS(self, server: ScriptedSMTP, session: Session, envelope: Envelope) -> bool:
        self.log(server, "starttls")
        return True

    async def handle_RCPT(
        self,
        server: ScriptedSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        behaviour = behaviour_of(address)
        if behaviour == "drop":
            self.log(server, "rcpt", recipient=address, behaviour=behaviour, reply=None)
            await _abort(server, reset=False)
        reply = self._rcpt_reply(behaviour, address)
        self.log(server, "rcpt", recipient=address, behaviour=behaviour, reply=reply)
        if behaviour == "slowdown":
            await server.push(reply)
            assert server.transport is not None
            server.transport.close()
            await _forever()
        if reply == OK_RCPT:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return reply

    def _rcpt_reply(self, behaviour: str, address: str) -> str:
        if behaviour in REFUSALS:
            return REFUSALS[behaviour].format(address=address)
        if behaviour == "greylist":
            key = address.lower()
            if key not in self.greylisted:
                self.greylisted.add(key)
                return GREYLISTED
        if behaviour == "slowdown":
            return SLOW_DOWN
        if behaviour == "garbage":
            return GARBAGE
        if behaviour == "malformed":
            return MALFORMED
        return OK_RCPT

    async def handle_DATA(self, server: ScriptedSMTP, session: Session, envelope: Envelope) -> str:
        recipients = list(envelope.rcpt_tos)
        behaviours = {behaviour_of(r) for r in recipients}
        failure = next((b for b in DATA_FAILURES if b in behaviours), None)
        if failure in ("resetdata", "hang"):
            self.log(server, "data", recipients=recipients, behaviour=failure, reply=None)
            if failure == "resetdata":
                await _abort(server, reset=True)
            await _forever()
        if failure == "rejectdata":
            self.log(
                server, "data", recipients=recipients, behaviour=failure, reply=CONTENT_REJECTED
            )
            return CONTENT_REJECTED
        content = envelope.original_content or b""
        record = {
            "connection": server.connection_id,
            "peer": _peer(session),
            "tls": session.ssl is not None,
            "ehlo": session.host_name,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": recipients,
            "data": content.decode("latin-1"),
            "time": time.time(),
        }
        _append(self.output, record)
        self.log(server, "data", recipients=recipients, behaviour=ACCEPT, reply=OK_DATA)
        return OK_DATA


class ScriptedSMTP(SMTP):
    """aiosmtpd's protocol, numbering its connection and logging connect/disconnect."""

    def __init__(self, script: Script, **kwargs: Any) -> None:
        super().__init__(script, **kwargs)
        self.script = script
        self.connection_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # called again with the TLS transport after STARTTLS
        super().connection_made(transport)
        if first:
            self.connection_id = next(self.script.connection_ids)
            self.script.log(self, "connect")

    async def smtp_EHLO(self, arg: str) -> None:
        if self.script.hang_after_greeting:
            self.script.log(self, "hang", command="EHLO")
            await _forever()
        await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg: str) -> None:
        if self.script.hang_after_greeting:
            self.script.log(self, "hang", command="HELO")
            await _forever()
        await super().smtp_HELO(arg)

    async def smtp_DATA(self, arg: str) -> None:
        """``resetmid…``: 354, read the first line of data, then reset the connection."""
        envelope = self.envelope
        recipients = list(envelope.rcpt_tos) if envelope is not None else []
        if arg or not any(behaviour_of(r) == "resetmid" for r in recipients):
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        self.script.log(self, "data", recipients=recipients, behaviour="resetmid", reply=None)
        await _abort(self, reset=True)

    def connection_lost(self, error: Exception | None) -> None:
        self.script.log(self, "disconnect")
        super().connection_lost(error)


def _peer(session: Session | None) -> dict[str, Any] | None:
    if session is None or not session.peer:
        return None
    return {"address": session.peer[0], "port": session.peer[1]}


async def _abort(server: SMTP, *, reset: bool) -> NoReturn:
    """Close the connection at once, without a reply; with ``reset`` the peer gets a RST."""
    transport = server.transport
    assert transport is not None
    if reset:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]
    await _forever()


async def _forever() -> NoReturn:
    """Wait until aiosmtpd cancels the session (the connection is gone)."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable")


def _append(path: Path, record: dict[str, Any]) -> None:
    """A few hundred bytes per line: a blocking write is fine in this test server."""
    with path.open("a", encoding="ascii") as out:
        out.write(json.dumps(record) + "\n")


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hang-after-greeting", action="store_true")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
    script = Script(args.output, hang_after_greeting=args.hang_after_greeting)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: ScriptedSMTP(
                script, hostname="mx.scripted.test", tls_context=tls_context, require_starttls=False
            ),
            host=args.host,
            port=args.port,
        )
    except OSError as error:
        sys.exit(f"scripted_mx: cannot listen on {args.host}: {error}")
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    async with server:
        if args.exit_on_stdin_eof:
            await _stdin_closed()
        else:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
