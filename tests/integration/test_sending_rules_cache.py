"""The per-node cache of the send rules (tenant status, sending domain) never lets a refused
sender through: a change on this node applies to the next request, one made by another node
(a second store on the same database) within ``sending_rules_cache_ttl``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from appliance.store.store import Store
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain

DOMAIN = "cache.example.test"
TTL = 2.0


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    # A long key cache: the key stays trusted after a suspension, so acceptance must refuse.
    config = appliance_config(
        tmp_path / "data", database_url, api_key_cache_ttl=600, sending_rules_cache_ttl=TTL
    )
    async with run_appliance(config) as running:
        yield running


@pytest.fixture
async def http(app: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as c:
        yield c


async def _send(http: httpx.AsyncClient) -> httpx.Response:
    body = {
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "from": {"email": f"news@{DOMAIN}"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    return await http.post("/v3/mail/send", json=body)


async def test_domain_deactivated_or_deleted_through_the_api_is_refused_at_once(
    app: RunningAppliance, http: httpx.AsyncClient
) -> None:
    domain, _ = await verified_domain(app, DOMAIN)
    assert (await _send(http)).status_code == 202  # the domain is cached as sending
    off = await http.patch(f"/api/admin/domains/{domain.id}", json={"is_active": False})
    assert off.status_code == 200, off.text
    refused = await _send(http)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == "Sender domain not verified"
    on = await http.patch(f"/api/admin/domains/{domain.id}", json={"is_active": True})
    assert on.status_code == 200, on.text
    assert (await _send(http)).status_code == 202
    gone = await http.delete(f"/api/admin/domains/{domain.id}")
    assert gone.status_code == 204, gone.text
    assert (await _send(http)).status_code == 403


async def test_suspended_tenant_is_refused_at_once_and_reinstated_at_once(
    app: RunningAppliance, http: httpx.AsyncClient
) -> None:
    await verified_domain(app, DOMAIN)
    store, tenant = app.ctx.store, app.init.tenant_id
    assert (await _send(http)).status_code == 202  # the tenant is cached as active
    await store.tenants.set_status(tenant, "suspended", "hard bounces 12 %")
    refused = await _send(http)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["help"] == "hard bounces 12 %"
    assert await store.reputation.reinstate(tenant, by="test", now=time.time())
    assert (await _send(http)).status_code == 202


async def test_another_nodes_deactivation_applies_within_the_ttl(
    app: RunningAppliance, http: httpx.AsyncClient, database_url: str
) -> None:
    domain, _ = await verified_domain(app, DOMAIN)
    assert (await _send(http)).status_code == 202
    other = await Store.open(database_url, migrate_schema=False)  # another node, same database
    try:
        await other.domains.set_active(app.init.tenant_id, domain.id, False)
    finally:
        other.close()
    # This node has not seen the write: the cached answer holds (the cache is in use)...
    assert (await _send(http)).status_code == 202
    await trio.sleep(TTL + 0.2)
    # ...and expires within the TTL.
    assert (await _send(http)).status_code == 403
