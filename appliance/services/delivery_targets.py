"""Opening an SMTP connection to a destination: the recipient domain's MX hosts or a relay.

MX delivery tries each target in preference order until one holds a
session (RFC 5321 §5.1); a host that refuses the session or fails TLS does
not stop the others. Opportunistic STARTTLS: when the TLS handshake fails
the same host is tried again in plaintext (RFC 7435), because mail that
cannot be encrypted is still better delivered than bounced. A smart-host
relay is one target with its own TLS mode and credentials. In capture mode
the target is the built-in mailbox (``services.capture_target``): every
connection is a :class:`Transport`, so the engine sends to all three alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.domain.delivery_outcome import Route
from appliance.net.smtp_client import SmtpConnection, SmtpTimeouts, connect_smtp
from appliance.net.smtp_client_errors import (
    SmtpAuthenticationFailed,
    SmtpSessionError,
    TlsNegotiationFailed,
)
from appliance.protocols.smtp_client_errors import SmtpClientError
from appliance.protocols.smtp_client_events import AuthMechanism
from appliance.protocols.smtp_client_outcome import TransactionResult
from appliance.services.destination import Job
from appliance.services.mx_routing import MxRouter
from appliance.services.relay_test import RelayEndpoint, relay_tls_context


class DestinationUnreachable(Exception):
    """No connection could be opened; ``permanent`` when no retry can help (null MX...)."""

    def __init__(self, description: str, *, permanent: bool, status: str) -> None:
        super().__init__(description)
        self.description = description
        self.permanent = permanent
        self.status = status


class Transport(Protocol):
    """Where a worker sends its destination's jobs, one transaction per job."""

    @property
    def usable(self) -> bool:
        """True while another job can be sent over it."""
        ...

    async def send(self, job: Job) -> TransactionResult:
        """Send one composed message to its recipient; raises like ``SmtpConnection``."""
        ...

    async def quit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpTransport:
    """An SMTP connection to an MX host or a relay."""

    connection: SmtpConnection

    @property
    def usable(self) -> bool:
        return self.connection.usable

    async def send(self, job: Job) -> TransactionResult:
        composed = job.composed
        return await self.connection.send_message(
            composed.envelope_from, [composed.recipient], composed.data
        )

    async def quit(self) -> None:
        await self.connection.quit()


@dataclass(frozen=True, slots=True)
class Connected:
    connection: Transport
    route: Route


async def connect_mx(
    router: MxRouter,
    domain: str,
    *,
    port: int,
    helo_name: str,
    source_address: str | None,
    timeouts: SmtpTimeouts,
) -> Connected:
    route = await router.route(domain)
    if not route.ok:
        raise DestinationUnreachable(route.reason, permanent=route.permanent, status=route.status)
    failures: list[str] = []
    for target in route.targets:
        for starttls in ("opportunistic", "never"):
            try:
                connection = await connect_smtp(
                    target.address,
                    port,
                    helo_name=helo_name,
                    local_address=source_address,
                    tls_server_hostname=target.host,
                    starttls=starttls,
                    timeouts=timeouts,
                )
            except TlsNegotiationFailed as exc:
                failures.append(f"{target.host} [{target.address}]: {exc}")
                continue  # the same host again, in plaintext
            except SmtpSessionError as exc:
                failures.append(f"{target.host} [{target.address}]: {exc}")
                break  # the next MX target
            return Connected(
                SmtpTransport(connection),
                Route(
                    mx_host=target.host,
                    ip=source_address,
                    tls=connection.tls_active,
                    relay=None,
                ),
            )
    raise DestinationUnreachable(
        f"no MX host of {domain} took a connection: " + "; ".join(failures),
        permanent=False,
        status="4.4.1",
    )


async def connect_relay(
    relay: RelayEndpoint,
    *,
    helo_name: str,
    source_address: str | None,
    timeouts: SmtpTimeouts,
) -> Connected:
    context = relay_tls_context(relay.verify_tls)
    try:
        connection = await connect_smtp(
            relay.host,
            relay.port,
            helo_name=helo_name,
            local_address=source_address,
            tls_context=context,
            starttls="required" if relay.tls_mode == "starttls" else "never",
            implicit_tls=relay.tls_mode == "implicit",
            timeouts=timeouts,
        )
    except SmtpSessionError as exc:
        raise DestinationUnreachable(
            f"relay {relay.name} ({relay.host}:{relay.port}): {exc}",
            permanent=False,
            status="4.4.1",
        ) from exc
    if relay.username:
        try:
            await connection.authenticate(
                relay.username,
                relay.password or "",
                mechanism=AuthMechanism(relay.auth_mechanism) if relay.auth_mechanism else None,
                require_tls=relay.tls_mode != "none",
            )
        except SmtpAuthenticationFailed as exc:
            await connection.aclose()
            raise DestinationUnreachable(
                f"relay {relay.name} refused our credentials ({exc}); check the relay's "
                "username and password under /api/admin/relays and run the relay test",
                permanent=False,
                status="4.7.0",
            ) from exc
        except (SmtpSessionError, SmtpClientError) as exc:
            await connection.aclose()
            raise DestinationUnreachable(
                f"relay {relay.name}: AUTH failed: {exc}", permanent=False, status="4.7.0"
            ) from exc
    return Connected(
        SmtpTransport(connection),
        Route(mx_host=relay.host, ip=source_address, tls=connection.tls_active, relay=relay.name),
    )
