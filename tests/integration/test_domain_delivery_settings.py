"""``PATCH /api/admin/domains/{id}`` warm-up and reply forwarding, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.appliance import RunningAppliance, appliance_config, run_appliance

API = "/api/admin/domains"


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    """The appliance on each engine, with the SPF setting that domain creation needs."""
    config = appliance_config(tmp_path / "data", database_url, spf_include="_spf.postyard.test")
    async with run_appliance(config) as running:
        yield running


@pytest.fixture
async def client(app: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=30) as c:
        yield c


async def domain_url(client: httpx.AsyncClient) -> str:
    r = await client.post(API, json={"domain": "shop.test", "algorithm": "ed25519"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["warmup"], created["warmup_started_at"], created["forward_to"]) == (
        False,
        None,
        None,
    )
    return f"{API}/{created['id']}"


async def patch(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.patch(url, json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_warmup_starts_once_and_stops(
    client: httpx.AsyncClient, app: RunningAppliance
) -> None:
    url = await domain_url(client)
    on = await patch(client, url, {"warmup": True})
    assert on["warmup"] is True and isinstance(on["warmup_started_at"], float)
    again = await patch(client, url, {"warmup": True})
    assert again["warmup_started_at"] == on["warmup_started_at"], "the caps keep rising from day 1"
    stored = await app.ctx.store.domains.get(app.init.tenant_id, on["id"])
    assert stored is not None and stored.warmup_started_at == on["warmup_started_at"]

    off = await patch(client, url, {"warmup": False})
    assert (off["warmup"], off["warmup_started_at"]) == (False, None)
    both = await patch(client, url, {"warmup": True, "is_active": False})
    assert both["warmup"] is True and both["is_active"] is False


async def test_forward_to_is_normalised_cleared_and_checked(
    client: httpx.AsyncClient, app: RunningAppliance
) -> None:
    url = await domain_url(client)
    set_ = await patch(client, url, {"forward_to": "Team@Example.ORG"})
    assert set_["forward_to"] == "Team@example.org"
    stored = await app.ctx.store.domains.get(app.init.tenant_id, set_["id"])
    assert stored is not None and stored.forward_to == "Team@example.org"
    assert (await client.get(url)).json()["forward_to"] == "Team@example.org"

    for bad, words in (
        ("not an address", "not a valid email address"),
        ("replies@shop.test", "would loop"),
        ("replies@mail.shop.test", "would loop"),
    ):
        r = await client.patch(url, json={"forward_to": bad})
        assert r.status_code == 400, bad
        error = r.json()["errors"][0]
        assert error["field"] == "forward_to" and words in error["message"]
    assert (await client.get(url)).json()["forward_to"] == "Team@example.org"

    cleared = await patch(client, url, {"forward_to": None})
    assert cleared["forward_to"] is None


async def test_patch_refuses_null_flags_and_empty_bodies(client: httpx.AsyncClient) -> None:
    url = await domain_url(client)
    for body, field in (
        ({}, "is_active"),
        ({"warmup": None}, "warmup"),
        ({"warmup": "yes"}, "warmup"),
        ({"is_active": None}, "is_active"),
    ):
        r = await client.patch(url, json=body)
        assert r.status_code == 400, body
        assert r.json()["errors"][0]["field"] == field
    assert (await client.patch(f"{API}/dom_nope", json={"warmup": True})).status_code == 404
