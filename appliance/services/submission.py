"""The SMTP submission service (port 587): mail from applications, authenticated by API key.

Serves :mod:`appliance.net.smtp_server` with :class:`SubmissionPolicy` on
``submission_listen``: STARTTLS when ``tls_cert_file`` is set, AUTH PLAIN or
LOGIN required before MAIL (``530 5.7.0``). AUTH is offered only under TLS,
unless ``submission_allow_plain_auth`` is set or, without a certificate, the
listener is on a loopback address (nothing off the host can reach it). With
neither TLS nor a way to allow clear-text AUTH the service does not listen:
its health details and a warning say why.

Each transaction counts against the API key's ``api_rate_limit`` per
``api_rate_window`` (counters of this service, per node), as each request
does on the HTTP API; over it, MAIL is answered ``451 4.7.1``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import ssl
from functools import partial
from typing import Final

import trio

from appliance.api.rate_limit import RateLimiter
from appliance.config import Config, Listen
from appliance.context import AppContext
from appliance.domain.send_request import MAX_RECIPIENTS, MAX_REQUEST_BYTES
from appliance.health import ServiceHealth
from appliance.net.smtp_server import SmtpServer, serve_smtp
from appliance.protocols.smtp_server import AuthMode, SmtpLimits
from appliance.services.acceptance import MailAcceptance
from appliance.services.submission_policy import SubmissionPolicy
from appliance.supervisor import beat_until

log = logging.getLogger("appliance.submission")

NAME: Final = "submission"
LIMITS: Final = SmtpLimits(max_message_size=MAX_REQUEST_BYTES, max_recipients=MAX_RECIPIENTS)
"""As on the HTTP API: 30 MB per message, 1000 recipients (SendGrid's limits)."""
NO_TLS: Final = (
    "submission is not listening: no TLS certificate is configured, so API keys would cross "
    "the network in clear text. Set tls_cert_file and tls_key_file, or set "
    "submission_allow_plain_auth = true, or listen on a loopback address"
)


def server_tls_context(config: Config) -> ssl.SSLContext | None:
    """The STARTTLS context from ``tls_cert_file``/``tls_key_file``; None when unset."""
    if not config.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(
            f"cannot load tls_cert_file {config.tls_cert_file!r} / tls_key_file "
            f"{config.tls_key_file!r}: {exc}; check the paths and that the key matches"
        ) from exc
    return context


def auth_mode(config: Config, listen: Listen, *, tls: bool) -> AuthMode | None:
    """When AUTH is offered (see the module docstring); None: not at all."""
    if config.submission_allow_plain_auth:
        return AuthMode.ALWAYS
    if tls:
        return AuthMode.AFTER_TLS
    if _is_loopback(listen.host):
        return AuthMode.ALWAYS
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(config: Config) -> str:
    return (config.hostname or socket.getfqdn()).rstrip(".").lower()


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    config = ctx.config
    listen = config.submission
    tls_context = server_tls_context(config)
    mode = auth_mode(config, listen, tls=tls_context is not None)
    if mode is None:
        log.warning(NO_TLS, extra={"submission_listen": str(listen)})
        health.beat(listening=[], disabled=NO_TLS)
        task_status.started()
        await beat_until(health, ctx.shutdown, config.heartbeat_interval)
        return

    acceptance = MailAcceptance(ctx)
    limiter = RateLimiter(limit=config.api_rate_limit, window=config.api_rate_window)
    async with trio.open_nursery() as nursery:
        server: SmtpServer = await nursery.start(
            partial(
                serve_smtp,
                lambda: SubmissionPolicy(ctx, acceptance, limiter),
                host=listen.host,
                port=listen.port,
                tls_context=tls_context,
                limits=LIMITS,
                hostname=_hostname(config),
                auth_mode=mode,
                require_auth=True,
            )
        )
        bound = [str(Listen(host, port)) for host, port in server.bound]
        ctx.listeners[NAME] = bound[0]
        log.info(
            "submission listening",
            extra={"binds": bound, "starttls": tls_context is not None, "auth": mode.value},
        )
        health.beat(listening=bound)
        task_status.started()
        try:
            while not ctx.shutdown.is_set():
                health.beat(**dataclasses.asdict(server.statistics()))
                with trio.move_on_after(config.heartbeat_interval):
                    await ctx.shutdown.wait()
        finally:
            ctx.listeners.pop(NAME, None)
        # Open conversations end with "421 4.3.2 Service shutting down".
        nursery.cancel_scope.cancel()
