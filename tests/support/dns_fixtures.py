"""pytest fixtures: a test DNS server in the test's nursery, and our resolver pointed at it.

Import them into ``tests/conftest.py``::

    from tests.support.dns_fixtures import dns_resolver, dns_server  # noqa: F401

``dns_server.zones`` can be changed at any point of a test; the next query
sees the change (nothing caches).
"""

from __future__ import annotations

import pytest
import trio

from appliance.net.dns import Resolver, init_dns_backend
from tests.support.dns_server import DnsServer, Zones


@pytest.fixture
async def dns_server(nursery: trio.Nursery) -> DnsServer:
    server = DnsServer(Zones())
    await nursery.start(server.serve)
    return server


@pytest.fixture
def dns_resolver(dns_server: DnsServer) -> Resolver:
    init_dns_backend()
    return Resolver([dns_server.address], timeout=0.5, lifetime=1.5)
