"""The inbound SMTP service (port 25): bounces and complaints, and forwarded replies.

Serves :mod:`appliance.net.smtp_server` with :class:`InboundPolicy` on
``inbound_listen``. Mail is taken only for ``<bounce subdomain>.<domain>`` of
a domain in the store (any tenant's, active or not) and, for reply
forwarding (``services.forwarding``), for a sending domain whose
``forward_to`` is set; every other recipient is refused in the conversation
with ``550 5.7.1``, so this is never an open relay. The null sender
(``MAIL FROM:<>``, as DSNs use) is welcome; there is no AUTH; STARTTLS is
offered when ``tls_cert_file`` is set.

At the end of DATA the message is parsed (``domain.bounce_report``, in a
worker thread), matched to the message it is about (``domain.inbound_outcome``:
the VERP recipient, then the ``X-Postyard-Message-Id`` header, then the
returned original's Message-ID) and recorded with its event, status change
and suppression in one transaction (``store.inbound_reports``). Every accepted
report is stored, matched or not. If storing fails the client gets
``451 4.3.0`` and keeps the report to try again: a report is never lost
after a 250.

Mail for a forwarding domain is queued to its ``forward_to`` address instead
(``ReplyForwarder``). Bounces sent back to a forwarded message's SRS address
(``SRS0=…@<bounce domain>``) arrive at a bounce domain and are kept as
reports like any other; they are not relayed back to the original sender.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Collection, Mapping
from functools import partial
from types import MappingProxyType
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
from appliance.services.forwarding import ReplyForwarder, route_refusal
from appliance.services.submission import server_tls_context
from appliance.store.domains import ForwardingRoute
from appliance.store.inbound_reports import IncomingReport
from appliance.store.store import Store

log = logging.getLogger("appliance.inbound")

NAME: Final = "inbound"
DOMAIN_CACHE_SECONDS: Final = 5.0
"""How long the bounce domains and forwarding routes are reused; changes apply after this."""
NO_ROUTES: Final[Mapping[str, ForwardingRoute]] = MappingProxyType({})
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


def forwarding_route(address: str, routes: Mapping[str, ForwardingRoute]) -> ForwardingRoute | None:
    """The route of the sending domain ``address`` is at (a valid address only), if any."""
    try:
        return routes.get(parse_address(address).domain)
    except InvalidAddressError:
        return None


def rcpt_refusal(
    address: str,
    bounce_domains: Collection[str],
    routes: Mapping[str, ForwardingRoute] = NO_ROUTES,
) -> Reply | None:
    """None when ``address`` is at one of our bounce domains or at a sending domain
    that forwards its mail; else the 550 5.7.1 refusal. A local part that routes
    on (``user%other@``, ``other!user@``, ``"user@other"@``) is refused even at our
    domains: no address we hand out has one, and relays in the wild honour them."""
    if _routes_on(address):
        return relay_denied(address)
    if "@" in address and bounce_domain_of(address) in bounce_domains:
        return None
    route = forwarding_route(address, routes)
    if route is None:
        return relay_denied(address)
    return route_refusal(address, route)


def _routes_on(address: str) -> bool:
    """True for the percent hack, bang paths and quoted local parts holding an ``@``."""
    local = address.rpartition("@")[0]
    return any(c in local for c in "%!@")


def envelope_tenant(recipients: Collection[str], bounce_domains: Mapping[str, str]) -> str | None:
    """The one tenant owning the bounce domains a report was sent to (None if several)."""
    tenants = {bounce_domains.get(bounce_domain_of(r)) for r in recipients}
    return tenants.pop() if len(tenants) == 1 else None


@dataclasses.dataclass(frozen=True, slots=True)
class RecipientDomains:
    bounce: Mapping[str, str]
    """Bounce domain → tenant id."""
    routes: Mapping[str, ForwardingRoute]
    """Sending domain → whether and where its mail is forwarded."""


class BounceDomains:
    """The bounce domains and forwarding routes, re-read from the store every few seconds."""

    def __init__(self, store: Store, *, ttl: float = DOMAIN_CACHE_SECONDS) -> None:
        self._store = store
        self._ttl = ttl
        self._domains: RecipientDomains | None = None
        self._expires = float("-inf")
        self._lock = trio.Lock()

    async def current(self) -> RecipientDomains:
        """The domains; stale ones when the store cannot be read (raises with none)."""
        if trio.current_time() < self._expires and self._domains is not None:
            return self._domains
        async with self._lock:  # one reload at a time; the others reuse its result
            if trio.current_time() >= self._expires or self._domains is None:
                try:
                    self._domains = RecipientDomains(
                        await self._store.domains.bounce_domains(),
                        await self._store.domains.forwarding_routes(),
                    )
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
                envelope_tenant_id=envelope_tenant(envelope.recipients, domains.bounce),
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

    def __init__(self, receiver: ReportReceiver, forwarder: ReplyForwarder) -> None:
        self._receiver = receiver
        self._forwarder = forwarder
        # Recipients of this transaction taken for forwarding, with the route decided at
        # RCPT (so a forward_to removed before DATA cannot leave an accepted one unrouted).
        self._forwarding: dict[str, ForwardingRoute] = {}

    async def on_connect(self, session: SmtpSession) -> Reply | None:
        return None

    async def on_helo(self, session: SmtpSession, helo: Helo) -> Reply | None:
        return None

    async def on_auth(self, session: SmtpSession, attempt: AuthAttempt) -> Reply | None:
        return R.AUTH_UNAVAILABLE  # not offered (AuthMode.DISABLED): never asked

    async def on_mail(self, session: SmtpSession, mail: MailFrom) -> Reply | None:
        self._forwarding = {}  # a new transaction
        return None  # any sender, the null sender <> of DSNs included

    async def on_rcpt(self, session: SmtpSession, rcpt: RcptTo) -> Reply | None:
        try:
            domains = await self._receiver.domains.current()
        except Exception:
            log.exception("cannot read the bounce domains", extra={"peer_host": session.peer_host})
            return DOMAINS_UNAVAILABLE
        refusal = rcpt_refusal(rcpt.address, domains.bounce, domains.routes)
        if refusal is not None:
            log.info(
                "inbound recipient refused",
                extra={
                    "peer_host": session.peer_host,
                    "recipient": rcpt.address,
                    "reply": str(refusal),
                },
            )
        elif bounce_domain_of(rcpt.address) not in domains.bounce:
            route = forwarding_route(rcpt.address, domains.routes)
            if route is not None:  # always: rcpt_refusal took it for forwarding
                self._forwarding[rcpt.address] = route
        return refusal

    async def on_data(self, session: SmtpSession, message: MessageData) -> Reply | None:
        """Reports to the receiver, forwarded replies to the forwarder (reports first:
        a report stored twice is recorded once, a forward queued twice is sent twice)."""
        envelope = message.envelope
        forwards = {r: self._forwarding[r] for r in envelope.recipients if r in self._forwarding}
        reports = tuple(r for r in envelope.recipients if r not in forwards)
        if not forwards:
            return await self._receiver.receive(session, message)
        refusal = self._forwarder.loop_refusal(session, message)
        if refusal is not None:
            return refusal
        if reports:
            only_reports = dataclasses.replace(envelope, recipients=reports)
            reply = await self._receiver.receive(
                session, dataclasses.replace(message, envelope=only_reports)
            )
            if not reply.is_positive():
                return reply
        return await self._forwarder.forward(session, message, forwards)


def _hostname(ctx: AppContext) -> str:
    return (ctx.config.hostname or socket.getfqdn()).rstrip(".").lower()


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    config = ctx.config
    listen = config.inbound
    tls_context = server_tls_context(config)
    receiver = ReportReceiver(ctx.store, BounceDomains(ctx.store))
    forwarder = ReplyForwarder(ctx, hostname=_hostname(ctx))
    async with trio.open_nursery() as nursery:
        server: SmtpServer = await nursery.start(
            partial(
                serve_smtp,
                lambda: InboundPolicy(receiver, forwarder),
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
                    **dataclasses.asdict(forwarder.statistics),
                )
                with trio.move_on_after(config.heartbeat_interval):
                    await ctx.shutdown.wait()
        finally:
            ctx.listeners.pop(NAME, None)
        # Open conversations end with "421 4.3.2 Service shutting down".
        nursery.cancel_scope.cancel()
