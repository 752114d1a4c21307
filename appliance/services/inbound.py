"""The inbound SMTP service (port 25): bounces and complaints for our bounce domains.

Serves :mod:`appliance.net.smtp_server` with :class:`InboundPolicy` on
``inbound_listen``. Mail is taken only for ``<bounce subdomain>.<domain>`` of
a domain in the store (any tenant's, active or not); every other recipient is
refused in the conversation with ``550 5.7.1``, so this is never an open
relay. The null sender (``MAIL FROM:<>``, as DSNs use) is welcome; there is
no AUTH; STARTTLS is offered when ``tls_cert_file`` is set.

At the end of DATA the message is parsed (``domain.bounce_report``, in a
worker thread), matched to the message it is about (``domain.inbound_outcome``:
the VERP recipient, then the ``X-Postyard-Message-Id`` header, then the
returned original's Message-ID) and recorded with its event, status change
and suppression in one transaction (``store.inbound_reports``). Every accepted
report is stored, matched or not. If storing fails the client gets
``451 4.3.0`` and keeps the report to try again: a report is never lost
after a 250.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Collection, Mapping
from functools import partial
from typing import Final

import trio

from appliance.config import Listen
from appliance.context import AppContext
from appliance.domain.bounce_report import parse_bounce
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.domain.inbound_outcome import match_keys
from appliance.health import ServiceHealth
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
from appliance.services.submission import server_tls_context
from appliance.store.inbound_reports import IncomingReport
from appliance.store.store import Store

log = logging.getLogger("appliance.inbound")

NAME: Final = "inbound"
DOMAIN_CACHE_SECONDS: Final = 5.0
"""How long the set of bounce domains is reused; a new domain is served after this."""
LIMITS: Final = SmtpLimits(max_message_size=48 * 1024 * 1024)
"""A DSN may return the whole original: room for the largest message we send (30 MB of
request, base64-encoded) so that no report is refused for its size."""

STORE_FAILED = Reply.build(
    451, "4.3.0", "The report could not be stored just now; please try again later"
)
DOMAINS_UNAVAILABLE = Reply.build(
    451, "4.3.0", "Cannot check the recipient just now; please try again later"
)


def relay_denied(address: str) -> Reply:
    return Reply.build(
        550,
        "5.7.1",
        f"<{address}>: relay access denied: this server only accepts bounce and "
        "complaint reports for its bounce domains",
    )


def bounce_domain_of(address: str) -> str:
    """The domain of a recipient in normal form (lower case, IDNA A-labels)."""
    try:
        return parse_address(address).domain
    except InvalidAddressError:
        return address.rpartition("@")[2].strip().rstrip(".").lower()


def rcpt_refusal(address: str, bounce_domains: Collection[str]) -> Reply | None:
    """None when ``address`` is at one of our bounce domains, else the 550 5.7.1 refusal."""
    if "@" in address and bounce_domain_of(address) in bounce_domains:
        return None
    return relay_denied(address)


def envelope_tenant(recipients: Collection[str], bounce_domains: Mapping[str, str]) -> str | None:
    """The one tenant owning the bounce domains a report was sent to (None if several)."""
    tenants = {bounce_domains.get(bounce_domain_of(r)) for r in recipients}
    return tenants.pop() if len(tenants) == 1 else None


class BounceDomains:
    """Bounce domain → tenant id, re-read from the store every few seconds."""

    def __init__(self, store: Store, *, ttl: float = DOMAIN_CACHE_SECONDS) -> None:
        self._store = store
        self._ttl = ttl
        self._domains: dict[str, str] | None = None
        self._expires = float("-inf")
        self._lock = trio.Lock()

    async def current(self) -> Mapping[str, str]:
        """The mapping; a stale one when the store cannot be read (raises with none)."""
        if trio.current_time() < self._expires and self._domains is not None:
            return self._domains
        async with self._lock:  # one reload at a time; the others reuse its result
            if trio.current_time() >= self._expires or self._domains is None:
                try:
                    self._domains = await self._store.domains.bounce_domains()
                except Exception:
                    if self._domains is None:
                        raise
                    log.warning("cannot re-read the bounce domains; using the last ones")
                self._expires = trio.current_time() + self._ttl
        return self._domains


@dataclasses.dataclass
class InboundStatistics:
    reports_recorded: int = 0
    reports_matched: int = 0
    reports_failed: int = 0
    """Reports answered 451 because they could not be stored."""


class ReportReceiver:
    """Parse, match and record one report; shared by every connection of the service."""

    def __init__(self, store: Store, domains: BounceDomains) -> None:
        self.store = store
        self.domains = domains
        self.statistics = InboundStatistics()

    async def receive(self, session: SmtpSession, message: MessageData) -> Reply:
        envelope = message.envelope
        try:
            report = await trio.to_thread.run_sync(parse_bounce, message.data)
            domains = await self.domains.current()
            incoming = IncomingReport(
                received_at=time.time(),
                remote_ip=session.peer_host,
                envelope_from=envelope.mail_from,
                envelope_to=envelope.recipients,
                report=report,
                raw=message.data,
                keys=tuple(match_keys(envelope.recipients, report)),
                envelope_tenant_id=envelope_tenant(envelope.recipients, domains),
            )
            recorded = await self.store.inbound_reports.record(incoming)
        except Exception:
            self.statistics.reports_failed += 1
            log.exception(
                "inbound report could not be stored; the sender was asked to retry",
                extra={"peer_host": session.peer_host, "envelope_to": list(envelope.recipients)},
            )
            return STORE_FAILED
        stored = recorded.report
        self.statistics.reports_recorded += 1
        self.statistics.reports_matched += stored.matched
        log.info(
            "inbound report recorded" if stored.matched else "inbound report kept unmatched",
            extra={
                "report_id": stored.id,
                "message_id": stored.message_id,
                "tenant_id": stored.tenant_id,
                "kind": stored.kind,
                "matched_by": stored.matched_by,
                "event_type": recorded.event_type,
                "event_id": recorded.event_id,
                "duplicate": recorded.duplicate,
                "status_changed": recorded.status_changed,
                "suppressed_in": recorded.suppressed_in,
                "peer_host": session.peer_host,
            },
        )
        return Reply.build(250, "2.0.0", f"Report {stored.id} received")


class InboundPolicy:
    """The :class:`~appliance.net.smtp_server.SmtpPolicy` of one inbound connection."""

    def __init__(self, receiver: ReportReceiver) -> None:
        self._receiver = receiver

    async def on_connect(self, session: SmtpSession) -> Reply | None:
        return None

    async def on_helo(self, session: SmtpSession, helo: Helo) -> Reply | None:
        return None

    async def on_auth(self, session: SmtpSession, attempt: AuthAttempt) -> Reply | None:
        return R.AUTH_UNAVAILABLE  # not offered (AuthMode.DISABLED): never asked

    async def on_mail(self, session: SmtpSession, mail: MailFrom) -> Reply | None:
        return None  # any sender, the null sender <> of DSNs included

    async def on_rcpt(self, session: SmtpSession, rcpt: RcptTo) -> Reply | None:
        try:
            domains = await self._receiver.domains.current()
        except Exception:
            log.exception("cannot read the bounce domains", extra={"peer_host": session.peer_host})
            return DOMAINS_UNAVAILABLE
        refusal = rcpt_refusal(rcpt.address, domains)
        if refusal is not None:
            log.info(
                "inbound recipient refused: not a bounce domain",
                extra={"peer_host": session.peer_host, "recipient": rcpt.address},
            )
        return refusal

    async def on_data(self, session: SmtpSession, message: MessageData) -> Reply | None:
        return await self._receiver.receive(session, message)


def _hostname(ctx: AppContext) -> str:
    return (ctx.config.hostname or socket.getfqdn()).rstrip(".").lower()


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    config = ctx.config
    listen = config.inbound
    tls_context = server_tls_context(config)
    receiver = ReportReceiver(ctx.store, BounceDomains(ctx.store))
    async with trio.open_nursery() as nursery:
        server: SmtpServer = await nursery.start(
            partial(
                serve_smtp,
                lambda: InboundPolicy(receiver),
                host=listen.host,
                port=listen.port,
                tls_context=tls_context,
                limits=LIMITS,
                hostname=_hostname(ctx),
                auth_mode=AuthMode.DISABLED,
            )
        )
        bound = [str(Listen(host, port)) for host, port in server.bound]
        ctx.listeners[NAME] = bound[0]
        log.info("inbound listening", extra={"binds": bound, "starttls": tls_context is not None})
        health.beat(listening=bound)
        task_status.started()
        try:
            while not ctx.shutdown.is_set():
                health.beat(
                    **dataclasses.asdict(server.statistics()),
                    **dataclasses.asdict(receiver.statistics),
                )
                with trio.move_on_after(config.heartbeat_interval):
                    await ctx.shutdown.wait()
        finally:
            ctx.listeners.pop(NAME, None)
        # Open conversations end with "421 4.3.2 Service shutting down".
        nursery.cancel_scope.cancel()
