"""Webhook address rule and the guarded connector: link-local and metadata addresses refused."""

from __future__ import annotations

from typing import Any

import httpcore
import pytest

from appliance.domain.webhook_addresses import blocked_address, blocked_host
from appliance.net.guarded_http import ForbiddenAddress, GuardedBackend, resolve


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "169.254.255.255",
        "fe80::1",
        "fe80::1%eth0",
        "febf:ffff::1",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:169.254.169.254",
    ],
)
def test_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    reason = blocked_address(address)
    assert reason is not None and ("link-local" in reason or "metadata" in reason)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "192.168.1.10",
        "172.16.0.1",
        "fd00::1",
        "fd00:ec2::253",
        "100.100.100.201",
        "169.253.255.255",
        "169.255.0.0",
        "fec0::1",
        "93.184.216.34",
    ],
)
def test_loopback_private_and_public_addresses_are_allowed(address: str) -> None:
    assert blocked_address(address) is None


def test_host_names_are_judged_once_resolved_and_brackets_are_stripped() -> None:
    assert blocked_host("hooks.example.com") is None
    assert blocked_host("[fe80::1]") is not None
    assert blocked_host("[::1]") is None


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where it was asked to connect, connects nowhere."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recording backend: not connecting")

    async def sleep(self, seconds: float) -> None:
        pass


@pytest.mark.parametrize(
    "host",
    [
        "2852039166",  # 169.254.169.254 as one number: getaddrinfo reads it like inet_aton
        "0xa9fea9fe",
        "169.254.43518",
        "169.254.169.254",
        "fe80::1",
        "100.100.100.200",
    ],
)
async def test_names_resolving_to_forbidden_addresses_are_never_connected(host: str) -> None:
    inner = RecordingBackend()
    backend = GuardedBackend(inner)  # the system resolver: numeric forms need no DNS
    with pytest.raises(ForbiddenAddress, match=r"refused to connect to .*webhook_allow_link_local"):
        await backend.connect_tcp(host, 80, timeout=5)
    assert inner.connects == []


async def test_any_forbidden_address_among_several_refuses_the_name() -> None:
    async def two_addresses(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "169.254.169.254"]

    inner = RecordingBackend()
    with pytest.raises(ForbiddenAddress, match=r"169\.254\.169\.254 is the cloud metadata service"):
        await GuardedBackend(inner, resolver=two_addresses).connect_tcp("hooks.test", 443)
    assert inner.connects == []


async def test_allowed_names_connect_to_the_checked_address() -> None:
    inner = RecordingBackend()
    with pytest.raises(httpcore.ConnectError, match="recording backend"):
        await GuardedBackend(inner).connect_tcp("localhost", 8080, timeout=5)
    assert inner.connects and inner.connects[0][0] in await resolve("localhost", 8080)
    assert inner.connects[0][1] == 8080
