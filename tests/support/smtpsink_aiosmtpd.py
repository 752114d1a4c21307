"""A real aiosmtpd server for the SMTP client's integration tests, run as a subprocess.

    python smtpsink_aiosmtpd.py --output received.jsonl [options]

Listens on 127.0.0.1, port chosen by the OS, prints ``PORT <n>`` on stdout
once listening, and appends one JSON line per accepted message to
``--output`` (envelope, options, session facts, the content as received after
aiosmtpd removed the dot-stuffing). Runs until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


class Sink:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.args.no_ehlo:
            return ["502 5.5.2 EHLO not implemented"]
        if self.args.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.args.refuse_sender:
            return "553 5.7.1 sender refused"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.args.refuse:
            return "550 5.1.1 no such user here"
        if address in self.args.tempfail:
            return "451 4.2.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if self.args.data_reply:
            return str(self.args.data_reply)
        record: dict[str, Any] = {
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "content_b64": base64.b64encode(content).decode(),
            "tls": session.ssl is not None or self.args.implicit_tls,
            "authenticated": bool(session.authenticated),
        }
        _append(self.args.output, json.dumps(record))
        return "250 2.0.0 queued"


def _append(path: str, line: str) -> None:
    """A few hundred bytes per message: a blocking write is fine in this test sink."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def authenticator(args: argparse.Namespace) -> Any:
    user, _, password = args.auth.partition(":")

    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return check


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth", help="user:password")
    parser.add_argument("--auth-without-tls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the start (465)")
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--no-ehlo", action="store_true")
    parser.add_argument("--smtputf8", action="store_true")
    parser.add_argument("--refuse", action="append", default=[])
    parser.add_argument("--tempfail", action="append", default=[])
    parser.add_argument("--refuse-sender", action="append", default=[])
    parser.add_argument("--data-reply")
    args = parser.parse_args()

    tls_context = None
    if args.cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)
    extra: dict[str, Any] = {}
    if args.auth:
        extra["authenticator"] = authenticator(args)
        # aiosmtpd counts only STARTTLS as TLS; with implicit TLS the session is encrypted.
        extra["auth_require_tls"] = not (args.auth_without_tls or args.implicit_tls)
    sink = Sink(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            sink,
            hostname="sink.test",
            tls_context=None if args.implicit_tls else tls_context,
            enable_SMTPUTF8=args.smtputf8,
            **extra,
        ),
        host="127.0.0.1",
        port=0,
        ssl=tls_context if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
