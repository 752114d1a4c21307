"""An httpx client that refuses to connect to addresses a webhook may not reach.

The API refuses a webhook URL whose host is a forbidden IP literal
(``domain/webhook_addresses.py``); a host name is judged here, when the
dispatcher connects: the name is resolved once, every address it resolves to
is checked, and the connection goes to the checked address (TLS still names
the host), so a name cannot be re-pointed between the check and the connect.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx
import trio

from appliance.domain.webhook_addresses import ALLOW_HELP, blocked_address

Resolver = Callable[[str, int], Awaitable[list[str]]]


class ForbiddenAddress(httpcore.ConnectError):
    """The host is, or resolves to, an address webhooks may not be sent to."""


async def resolve(host: str, port: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self, inner: httpcore.AsyncNetworkBackend | None = None, *, resolver: Resolver = resolve
    ) -> None:
        self._inner = inner or httpcore.TrioBackend()
        self._resolve = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with trio.fail_after(timeout or float("inf")):
                addresses = await self._resolve(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        for address in addresses:
            reason = blocked_address(address)
            if reason is not None:
                raise ForbiddenAddress(f"refused to connect to {host}: {reason}; {ALLOW_HELP}")
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not sent over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over ``GuardedBackend`` (TLS verified as usual)."""

    def __init__(self, *, verify: bool = True, backend: GuardedBackend | None = None) -> None:
        super().__init__(verify=verify)
        ssl_context = self._pool._ssl_context
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, network_backend=backend or GuardedBackend()
        )
