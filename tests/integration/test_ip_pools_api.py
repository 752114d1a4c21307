"""``/api/admin/ip_pools`` over real HTTP, on SQLite and PostgreSQL.

Pools hold source addresses, an optional relay and the warm-up switch; a
relay's deletion must leave its pools without a relay (the foreign key's
``ON DELETE SET NULL``, which each engine enforces its own way).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.appliance import RunningAppliance

API = "/api/admin/ip_pools"
RELAYS = "/api/admin/relays"

Json = dict[str, Any]


@pytest.fixture
async def client(appliance_any_db: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=appliance_any_db.base_url, headers=appliance_any_db.auth(), timeout=10
    ) as c:
        yield c


async def create(client: httpx.AsyncClient, **body: Any) -> Json:
    r = await client.post(API, json=body)
    assert r.status_code == 201, r.text
    created: Json = r.json()
    return created


async def test_pool_crud_with_addresses_relay_and_warmup(
    client: httpx.AsyncClient, appliance_any_db: RunningAppliance
) -> None:
    relay = (await client.post(RELAYS, json={"name": "smarthost", "host": "192.0.2.25"})).json()
    pool = await create(
        client,
        name="transactional",
        addresses=["192.0.2.10", " 2001:DB8::0:1 ", "192.0.2.10"],
        relay_id="smarthost",
        warmup=True,
    )
    assert pool["id"].startswith("pool_")
    assert pool["addresses"] == ["192.0.2.10", "2001:db8::1"], "normalised, duplicates dropped"
    assert (pool["relay_id"], pool["relay_name"]) == (relay["id"], "smarthost")
    assert pool["warmup"] is True and isinstance(pool["warmup_started_at"], float)
    started = pool["warmup_started_at"]

    assert (await client.get(f"{API}/transactional")).json() == pool
    assert (await client.get(f"{API}/{pool['id']}")).json() == pool
    plain = await create(client, name="bulk")
    assert (plain["addresses"], plain["relay_id"], plain["warmup"]) == ([], None, False)
    assert plain["warmup_started_at"] is None
    listed = (await client.get(API)).json()["result"]
    assert [p["name"] for p in listed] == ["bulk", "transactional"]

    again = (await client.patch(f"{API}/transactional", json={"warmup": True})).json()
    assert again["warmup_started_at"] == started, "turning warm-up on again keeps its start"
    off = (
        await client.patch(
            f"{API}/transactional",
            json={"warmup": False, "relay_id": None, "addresses": ["198.51.100.7"]},
        )
    ).json()
    assert (off["warmup"], off["warmup_started_at"], off["relay_id"]) == (False, None, None)
    assert off["addresses"] == ["198.51.100.7"]
    on = (await client.patch(f"{API}/transactional", json={"warmup": True})).json()
    assert on["warmup_started_at"] >= started

    renamed = await client.patch(f"{API}/{pool['id']}", json={"name": "tx"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "tx"
    stored = await appliance_any_db.ctx.store.ip_pools.get_by_name("tx")
    assert stored is not None and stored.addresses == ("198.51.100.7",)

    for response in (
        await client.post(API, json={"name": "bulk"}),
        await client.patch(f"{API}/tx", json={"name": "bulk"}),
    ):
        assert response.status_code == 409
        error = response.json()["errors"][0]
        assert error["field"] == "name" and "'bulk' already exists" in error["message"]

    assert (await client.delete(f"{API}/tx")).status_code == 204
    assert (await client.get(f"{API}/tx")).status_code == 404
    assert (await client.delete(f"{API}/tx")).status_code == 404


async def test_deleting_a_relay_detaches_its_pools_and_says_so(
    client: httpx.AsyncClient, appliance_any_db: RunningAppliance
) -> None:
    relay = (await client.post(RELAYS, json={"name": "smarthost", "host": "192.0.2.25"})).json()
    await create(client, name="a", relay_id=relay["id"])
    await create(client, name="b", relay_id=relay["id"])
    await create(client, name="c")

    deleted = await client.delete(f"{RELAYS}/{relay['id']}")
    assert deleted.status_code == 200
    body = deleted.json()
    assert body["pools_detached"] == ["a", "b"]
    assert "2 IP pools used it (a, b)" in body["message"]
    assert "direct to the recipients' MX hosts" in body["message"]
    for name in ("a", "b", "c"):
        pool = (await client.get(f"{API}/{name}")).json()
        assert (pool["relay_id"], pool["relay_name"]) == (None, None)
        stored = await appliance_any_db.ctx.store.ip_pools.get_by_name(name)
        assert stored is not None and stored.relay_id is None


async def test_bad_addresses_are_each_named(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    r = await http.post(
        API,
        headers=appliance.auth(),
        json={
            "name": "p",
            "addresses": ["192.0.2.1", "192.0.2.300", "10.0.0.0/24", "0.0.0.0", "ff02::1"],
        },
    )
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [
        "addresses.1",
        "addresses.2",
        "addresses.3",
        "addresses.4",
    ]
    assert errors[0]["message"] == "'192.0.2.300' is not an IP address"
    assert "list its addresses one by one" in errors[1]["message"]
    assert "unspecified" in errors[2]["message"] and "multicast" in errors[3]["message"]
    assert (await http.get(API, headers=appliance.auth())).json()["result"] == []


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "has space"}, "name", "letters, digits"),
        ({"name": ""}, "name", "not valid"),
        ({"name": "p", "addresses": "192.0.2.1"}, "addresses", "array"),
        ({"name": "p", "addresses": [1]}, "addresses.0", "string"),
        ({"name": "p", "relay_id": "nope"}, "relay_id", "does not exist"),
        ({"name": "p", "warmup": "yes"}, "warmup", "boolean"),
        ({"name": "p", "ips": []}, "ips", "not a recognised field"),
        ({}, "name", "missing"),
    ],
)
async def test_create_refuses_bad_bodies_naming_the_field(
    http: httpx.AsyncClient, appliance: RunningAppliance, body: Json, field: str, words: str
) -> None:
    r = await http.post(API, headers=appliance.auth(), json=body)
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["field"] == field and words in error["message"]


async def test_patch_refuses_null_for_required_fields(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    await http.post(API, headers=auth, json={"name": "p", "addresses": ["192.0.2.1"]})
    for field in ("name", "addresses", "warmup"):
        r = await http.patch(f"{API}/p", headers=auth, json={field: None})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == field
    assert (await http.patch(f"{API}/nope", headers=auth, json={"warmup": True})).status_code == 404


async def test_each_route_needs_its_ip_pools_scope(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    key = await http.post(
        "/v3/api_keys",
        headers=appliance.auth(),
        json={"name": "reader", "scopes": ["ip_pools.read"]},
    )
    reader = appliance.auth(key.json()["api_key"])
    assert (await http.get(API, headers=reader)).status_code == 200
    assert (await http.get(RELAYS, headers=reader)).status_code == 403
    needs = [
        ("POST", API, {"name": "p"}, "ip_pools.create"),
        ("PATCH", f"{API}/p", {"warmup": True}, "ip_pools.update"),
        ("DELETE", f"{API}/p", None, "ip_pools.delete"),
    ]
    for method, url, body, scope in needs:
        r = await http.request(method, url, headers=reader, json=body)
        assert r.status_code == 403, (method, url)
        assert r.json()["errors"][0]["message"] == f"Missing required scope: {scope}"
