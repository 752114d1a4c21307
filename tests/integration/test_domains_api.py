"""``/api/admin/domains`` over real HTTP, verifying against the test DNS server on 127.0.0.1.

The appliance resolves through ``tests/support/dns_server.py`` (its
``dns_nameservers`` point there), so a test publishes records by changing
the zone and the next ``POST …/verify`` sees them. The store tests at the
end run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.domain.dkim_keys import (
    DkimAlgorithm,
    generate_key_pair,
    load_private_key,
    public_txt_value,
)
from appliance.domain.secret_box import SecretBox
from appliance.provisioning import create_full_access_key
from appliance.store.domains import DomainExistsError, StoredDkimKey, signing_material
from appliance.store.store import Store
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.dns_fixtures import dns_server  # noqa: F401
from tests.support.dns_server import DnsServer, Zones, txt, txt_split

BOUNCE_MX = "mx.postyard.test"
SPF_INCLUDE = "_spf.postyard.test"
OUTBOUND_IP = "192.0.2.10"
OUR_SPF = f"v=spf1 include:{SPF_INCLUDE} ip4:{OUTBOUND_IP} ~all"
API = "/api/admin/domains"

Record = dict[str, Any]


@pytest.fixture
async def appliance(
    tmp_path: Path,
    sqlite_url: str,
    dns_server: DnsServer,  # noqa: F811
) -> AsyncIterator[RunningAppliance]:
    """The appliance resolving through the test DNS server (overrides conftest's)."""
    config = appliance_config(
        tmp_path / "data",
        sqlite_url,
        dns_nameservers=(dns_server.address,),
        hostname=BOUNCE_MX,
        spf_include=SPF_INCLUDE,
        outbound_ips=(OUTBOUND_IP,),
    )
    async with run_appliance(config) as running:
        yield running


def publish(zones: Zones, records: list[Record], *, skip: tuple[str, ...] = ()) -> None:
    """Publish records as ``GET …/dns-records`` gives them (long TXT as several strings)."""
    for r in records:
        if r["kind"] in skip:
            continue
        if r["type"] == "MX":
            zones.set(r["host"], "MX", f"{r['priority']} {r['value']}.")
        else:
            zones.set(r["host"], "TXT", txt(*r.get("strings", [r["value"]])))


def by_kind(records: list[Record], kind: str, *, pending: bool = False) -> Record:
    return next(r for r in records if r["kind"] == kind and r["pending"] is pending)


async def create(http: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> Record:
    r = await http.post(API, headers=auth, json={"domain": "shop.test", **body})
    assert r.status_code == 201, r.text
    created: Record = r.json()
    return created


async def verify(http: httpx.AsyncClient, auth: dict[str, str], domain_id: str) -> Record:
    r = await http.post(f"{API}/{domain_id}/verify", headers=auth)
    assert r.status_code == 200, r.text
    result: Record = r.json()
    return result


# ---------------------------------------------------------------- lifecycle


async def test_create_publish_verify_makes_the_domain_verified(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    auth = appliance.auth()
    created = await create(http, auth)
    assert created["id"].startswith("dom_")
    assert created["domain"] == "shop.test"
    assert (created["verified"], created["is_active"], created["can_send"]) == (False, True, False)
    assert created["dkim"]["algorithm"] == "rsa-sha256"
    assert created["pending_dkim"] is None
    domain_id = created["id"]

    records = (await http.get(f"{API}/{domain_id}/dns-records", headers=auth)).json()["records"]
    assert records == created["dns_records"]
    assert [(r["kind"], r["type"], r["host"]) for r in records] == [
        ("ownership", "TXT", "_postyard.shop.test"),
        ("dkim", "TXT", f"{created['dkim']['selector']}._domainkey.shop.test"),
        ("spf", "TXT", "shop.test"),
        ("return_path_mx", "MX", "bounces.shop.test"),
        ("return_path_spf", "TXT", "bounces.shop.test"),
        ("dmarc", "TXT", "_dmarc.shop.test"),
    ]
    dkim = by_kind(records, "dkim")
    assert dkim["value"].startswith("v=DKIM1; k=rsa; p=")
    assert len(dkim["value"]) > 255
    assert "".join(dkim["strings"]) == dkim["value"]
    assert all(len(s) <= 255 for s in dkim["strings"])
    assert by_kind(records, "spf")["value"] == OUR_SPF
    assert by_kind(records, "return_path_spf")["value"] == OUR_SPF.replace("~all", "-all")
    mx = by_kind(records, "return_path_mx")
    assert (mx["value"], mx["priority"]) == (BOUNCE_MX, 10)
    assert "strings" not in by_kind(records, "spf")
    assert all(r["purpose"] for r in records)
    assert by_kind(records, "dmarc")["required"] is False

    nothing = await verify(http, auth, domain_id)
    assert nothing["verified"] is False
    statuses = {r["kind"]: r["status"] for r in nothing["records"]}
    assert set(statuses.values()) == {"missing"}, statuses
    for r in nothing["records"]:
        assert "Publish" in r["reason"] or "Start with" in r["reason"], r
    assert "5 required records to fix" in nothing["message"]

    publish(dns_server.zones, records)
    good = await verify(http, auth, domain_id)
    assert good["verified"] is True, good["records"]
    assert good["can_send"] is True
    assert good["verified_at"] == good["checked_at"]
    assert {r["status"] for r in good["records"]} == {"found"}
    assert "mail can be sent from shop.test" in good["message"]

    one = (await http.get(f"{API}/{domain_id}", headers=auth)).json()
    assert one["verified"] is True and one["last_checked_at"] == good["checked_at"]
    assert one["last_check"]["records"] == good["records"]
    sending = await appliance.ctx.store.domains.sending_domain(
        appliance.init.tenant_id, "shop.test"
    )
    assert sending is not None and sending.id == domain_id

    listed = (await http.get(API, headers=auth)).json()["result"]
    assert [d["id"] for d in listed] == [domain_id]


async def test_each_missing_record_is_reported_alone(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    auth = appliance.auth()
    created = await create(http, auth)
    for kind in ("ownership", "dkim", "spf", "return_path_mx", "return_path_spf"):
        dns_server.zones = Zones()
        publish(dns_server.zones, created["dns_records"], skip=(kind,))
        result = await verify(http, auth, created["id"])
        assert result["verified"] is False, kind
        bad = [r for r in result["records"] if r["status"] != "found"]
        assert [(r["kind"], r["status"]) for r in bad] == [(kind, "missing")]
        assert by_kind(created["dns_records"], kind)["value"] in bad[0]["reason"]
    dns_server.zones = Zones()
    publish(dns_server.zones, created["dns_records"], skip=("dmarc",))
    result = await verify(http, auth, created["id"])
    assert result["verified"] is True, "DMARC is recommended, not required"
    dmarc = next(r for r in result["records"] if r["kind"] == "dmarc")
    assert dmarc["status"] == "missing" and dmarc["required"] is False


def _break_base64(value: str) -> str:
    head, p = value.split("p=", 1)
    return f"{head}p={p[:40]}!{p[41:]}"


Mutation = Callable[[Zones, Record], None]


def _dkim(rdata: Callable[[str], str]) -> Mutation:
    def mutate(zones: Zones, created: Record) -> None:
        record = by_kind(created["dns_records"], "dkim")
        zones.set(record["host"], "TXT", rdata(record["value"]))

    return mutate


def _second_spf(zones: Zones, created: Record) -> None:
    zones.add("shop.test", "TXT", txt("v=spf1 include:_spf.google.com ~all"))


@pytest.mark.parametrize(
    ("mutate", "kind", "status", "phrase", "verified"),
    [
        (_dkim(lambda v: txt_split(v, 50)), "dkim", "found", "Published correctly", True),
        (
            _dkim(lambda v: txt(" " + v[:200], v[200:] + " ")),
            "dkim",
            "found",
            "Published correctly",
            True,
        ),
        (_dkim(lambda v: txt_split(_break_base64(v))), "dkim", "wrong", "not base64", False),
        (_dkim(lambda v: txt(v[:255])), "dkim", "wrong", "truncated", False),
        (
            _dkim(lambda v: txt(f'"{v[:200]}" "', f'{v[200:]}"')),
            "dkim",
            "wrong",
            "quote characters",
            False,
        ),
        (_second_spf, "spf", "wrong", "2 SPF records", False),
    ],
    ids=["split-txt", "whitespace", "wrong-base64", "truncated", "pasted-quotes", "two-spf"],
)
async def test_broken_records_are_reported_with_the_reason_and_the_fix(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    dns_server: DnsServer,  # noqa: F811
    mutate: Mutation,
    kind: str,
    status: str,
    phrase: str,
    verified: bool,
    request: pytest.FixtureRequest,
) -> None:
    auth = appliance.auth()
    created = await create(http, auth)
    publish(dns_server.zones, created["dns_records"])
    mutate(dns_server.zones, created)
    result = await verify(http, auth, created["id"])
    check = next(r for r in result["records"] if r["kind"] == kind)
    assert check["status"] == status, check
    assert phrase in check["reason"]
    assert check["seen"], "what DNS returned is shown"
    assert result["verified"] is verified
    if kind == "spf" and not verified:
        assert f"include:{SPF_INCLUDE}" in check["reason"]
        assert "include:_spf.google.com" in check["reason"], "the merged record is suggested"
    if "whitespace" in request.node.callspec.id:
        assert any("whitespace" in n and "trim" in n for n in check["notes"]), check["notes"]


async def test_a_lookup_failure_does_not_unverify_a_verified_domain(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    auth = appliance.auth()
    created = await create(http, auth)
    publish(dns_server.zones, created["dns_records"])
    assert (await verify(http, auth, created["id"]))["verified"] is True
    dns_server.servfail.add("_postyard.shop.test")
    result = await verify(http, auth, created["id"])
    assert result["verified"] is True
    assert "try again" in result["message"]
    ownership = next(r for r in result["records"] if r["kind"] == "ownership")
    assert ownership["status"] == "unknown"

    dns_server.servfail.clear()
    dns_server.zones.delete("_postyard.shop.test")
    gone = await verify(http, auth, created["id"])
    assert gone["verified"] is False, "a record seen missing does un-verify"
    assert gone["verified_at"] == result["verified_at"], "verified_at keeps the last success"


# ---------------------------------------------------------------- names and bodies


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Shop.Test", "shop.test"),
        ("shop.test.", "shop.test"),
        ("bücher.test", "xn--bcher-kva.test"),
        ("mail.sub.shop.test", "mail.sub.shop.test"),
    ],
)
async def test_domain_names_are_lowercased_idna_a_labels(
    http: httpx.AsyncClient, appliance: RunningAppliance, given: str, stored: str
) -> None:
    created = await create(http, appliance.auth(), domain=given)
    assert created["domain"] == stored
    assert by_kind(created["dns_records"], "spf")["host"] == stored


@pytest.mark.parametrize(
    ("body", "field", "phrase"),
    [
        ({}, "domain", "domain missing required argument"),
        ({"domain": "localhost"}, "domain", "domain has no dot"),
        ({"domain": "under_score.test"}, "domain", "not a host name label"),
        ({"domain": "shop .test"}, "domain", "not a valid domain name"),
        ({"domain": "a@shop.test"}, "domain", "not a valid domain name"),
        ({"domain": "shop.123"}, "domain", "all digits"),
        ({"domain": "shop.test", "algorithm": "dsa"}, "algorithm", "rsa or ed25519"),
        ({"domain": "shop.test", "bounce_subdomain": "a.b"}, "bounce_subdomain", "one DNS label"),
    ],
)
async def test_invalid_create_bodies_name_the_field(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    body: dict[str, Any],
    field: str,
    phrase: str,
) -> None:
    r = await http.post(API, headers=appliance.auth(), json=body)
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["field"] == field
    assert phrase in error["message"]


async def test_ed25519_and_custom_bounce_subdomain(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    created = await create(http, appliance.auth(), algorithm="ed25519", bounce_subdomain="Returns")
    assert created["dkim"]["algorithm"] == "ed25519-sha256"
    dkim = by_kind(created["dns_records"], "dkim")
    assert dkim["value"].startswith("v=DKIM1; k=ed25519; p=")
    assert "strings" not in dkim, "a short TXT value is one string"
    assert by_kind(created["dns_records"], "return_path_mx")["host"] == "returns.shop.test"
    assert created["return_path_domain"] == "returns.shop.test"


async def test_existing_name_is_409_for_the_owner_and_for_another_tenant(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    mine = await create(http, appliance.auth())
    again = await http.post(API, headers=appliance.auth(), json={"domain": "SHOP.test"})
    assert again.status_code == 409
    error = again.json()["errors"][0]
    assert error["field"] == "domain" and mine["id"] in error["message"]

    store = appliance.ctx.store
    other = await store.tenants.create("Other")
    other_auth = appliance.auth(await create_full_access_key(store, other.id, "other"))
    theirs = await http.post(API, headers=other_auth, json={"domain": "shop.test"})
    assert theirs.status_code == 409
    text = theirs.text
    assert "already registered" in text
    assert mine["id"] not in text and appliance.init.tenant_id not in text


# ---------------------------------------------------------------- flags, rotation, delete


async def test_patch_is_active_controls_sending(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    auth, store, tenant = appliance.auth(), appliance.ctx.store, appliance.init.tenant_id
    created = await create(http, auth)
    publish(dns_server.zones, created["dns_records"])
    await verify(http, auth, created["id"])

    off = await http.patch(f"{API}/{created['id']}", headers=auth, json={"is_active": False})
    assert off.status_code == 200
    assert (off.json()["is_active"], off.json()["verified"], off.json()["can_send"]) == (
        False,
        True,
        False,
    )
    assert await store.domains.sending_domain(tenant, "shop.test") is None
    result = await verify(http, auth, created["id"])
    assert "inactive" in result["message"] and '"is_active": true' in result["message"]

    on = await http.patch(f"{API}/{created['id']}", headers=auth, json={"is_active": True})
    assert on.json()["can_send"] is True
    assert await store.domains.sending_domain(tenant, "shop.test") is not None

    for body in ({}, {"is_active": "yes"}, {"is_active": 1}):
        bad = await http.patch(f"{API}/{created['id']}", headers=auth, json=body)
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "is_active"


async def test_rotate_dkim_stages_a_key_that_signs_only_once_its_record_verifies(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    auth, ctx = appliance.auth(), appliance.ctx
    created = await create(http, auth)
    domain_id, old_selector = created["id"], created["dkim"]["selector"]
    publish(dns_server.zones, created["dns_records"])
    await verify(http, auth, domain_id)

    r = await http.post(f"{API}/{domain_id}/rotate-dkim", headers=auth)
    assert r.status_code == 200, r.text
    rotated = r.json()
    new_selector = rotated["pending_dkim"]["selector"]
    assert new_selector != old_selector
    assert rotated["dkim"]["selector"] == old_selector, "the current key keeps signing"
    assert rotated["verified"] is True
    new_record = rotated["record"]
    assert new_record["host"] == f"{new_selector}._domainkey.shop.test"
    assert new_record["pending"] is True and new_record["required"] is False
    assert "keeps signing" in rotated["message"]
    records = (await http.get(f"{API}/{domain_id}/dns-records", headers=auth)).json()["records"]
    assert by_kind(records, "dkim", pending=True) == new_record
    assert by_kind(records, "dkim")["host"] == f"{old_selector}._domainkey.shop.test"

    not_yet = await verify(http, auth, domain_id)
    assert not_yet["verified"] is True and not_yet["dkim_promoted"] is None
    pending_check = next(r for r in not_yet["records"] if r["pending"])
    assert pending_check["status"] == "missing"
    assert not_yet["dkim"]["selector"] == old_selector
    domain = await ctx.store.domains.get(appliance.init.tenant_id, domain_id)
    assert domain is not None
    assert signing_material(domain, ctx.secrets).selector == old_selector

    publish(dns_server.zones, [new_record])
    done = await verify(http, auth, domain_id)
    assert done["dkim_promoted"] == new_selector
    assert done["dkim"]["selector"] == new_selector and done["pending_dkim"] is None
    assert done["verified"] is True
    assert "now signs" in done["message"]
    domain = await ctx.store.domains.get(appliance.init.tenant_id, domain_id)
    assert domain is not None
    material = signing_material(domain, ctx.secrets)
    assert material.selector == new_selector and material.domain == "shop.test"
    key = load_private_key(material.private_key_pem)
    assert public_txt_value(key) == new_record["value"]

    # The old key's record may now go; the new one is what verification checks.
    dns_server.zones.delete(f"{old_selector}._domainkey.shop.test")
    assert (await verify(http, auth, domain_id))["verified"] is True


async def test_rotate_can_change_the_algorithm_and_rejects_a_bad_one(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    created = await create(http, auth)
    url = f"{API}/{created['id']}/rotate-dkim"
    ed = await http.post(url, headers=auth, json={"algorithm": "ed25519"})
    assert ed.json()["pending_dkim"]["algorithm"] == "ed25519-sha256"
    bad = await http.post(url, headers=auth, json={"algorithm": 5})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "algorithm"


async def test_delete_removes_the_domain(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    created = await create(http, auth)
    r = await http.delete(f"{API}/{created['id']}", headers=auth)
    assert r.status_code == 204 and r.content == b""
    gone = await http.get(f"{API}/{created['id']}", headers=auth)
    assert gone.status_code == 404 and gone.json()["errors"][0]["field"] == "domain_id"
    assert (await http.delete(f"{API}/{created['id']}", headers=auth)).status_code == 404
    await create(http, auth)  # the name is free again


# ---------------------------------------------------------------- isolation and scopes


async def test_a_tenant_never_sees_or_touches_another_tenants_domains(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    mine = await create(http, appliance.auth())
    store = appliance.ctx.store
    other = await store.tenants.create("Other")
    other_auth = appliance.auth(await create_full_access_key(store, other.id, "other"))

    assert (await http.get(API, headers=other_auth)).json() == {"result": []}
    base = f"{API}/{mine['id']}"
    attempts = [
        ("GET", base, None),
        ("GET", f"{base}/dns-records", None),
        ("POST", f"{base}/verify", None),
        ("POST", f"{base}/rotate-dkim", None),
        ("PATCH", base, {"is_active": False}),
        ("DELETE", base, None),
    ]
    for method, url, body in attempts:
        r = await http.request(method, url, headers=other_auth, json=body)
        assert r.status_code == 404, (method, url, r.text)
        assert mine["domain"] not in r.text
    after = (await http.get(base, headers=appliance.auth())).json()
    assert after["is_active"] is True and after["pending_dkim"] is None
    assert await store.domains.sending_domain(other.id, "shop.test") is None


async def test_each_route_needs_its_domains_scope(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    created = await create(http, appliance.auth())
    key = await http.post(
        "/v3/api_keys",
        headers=appliance.auth(),
        json={"name": "reader", "scopes": ["domains.read"]},
    )
    reader = appliance.auth(key.json()["api_key"])
    base = f"{API}/{created['id']}"
    assert (await http.get(API, headers=reader)).status_code == 200
    assert (await http.get(f"{base}/dns-records", headers=reader)).status_code == 200
    needs = [
        ("POST", API, {"domain": "other.test"}, "domains.create"),
        ("POST", f"{base}/verify", None, "domains.update"),
        ("POST", f"{base}/rotate-dkim", None, "domains.update"),
        ("PATCH", base, {"is_active": False}, "domains.update"),
        ("DELETE", base, None, "domains.delete"),
    ]
    for method, url, body, scope in needs:
        r = await http.request(method, url, headers=reader, json=body)
        assert r.status_code == 403, (method, url)
        assert r.json()["errors"][0]["message"] == f"Missing required scope: {scope}"
    nobody = await http.get(API)
    assert nobody.status_code == 401


async def test_without_spf_configuration_create_says_what_to_set(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = appliance_config(tmp_path / "bare", sqlite_url)
    async with run_appliance(config) as app:
        async with httpx.AsyncClient(base_url=app.base_url) as client:
            r = await client.post(API, headers=app.auth(), json={"domain": "shop.test"})
        assert await app.ctx.store.domains.for_tenant(app.init.tenant_id) == []
    assert r.status_code == 503
    error = r.json()["errors"][0]
    assert "POSTYARD_OUTBOUND_IPS" in error["help"] and "POSTYARD_SPF_INCLUDE" in error["help"]


# ---------------------------------------------------------------- store, both engines

BOX = SecretBox([SecretBox.generate_key()])


def _key(selector: str) -> StoredDkimKey:
    pair = generate_key_pair(DkimAlgorithm.ED25519_SHA256, selector=selector)
    return StoredDkimKey(
        pair.selector, pair.algorithm, BOX.encrypt(pair.private_key_pem), pair.public_txt
    )


async def test_store_domains_create_get_isolate_and_delete(store: Store) -> None:
    a = await store.tenants.create("A")
    b = await store.tenants.create("B")
    key = _key("py20260101aaaa")
    domain = await store.domains.create(
        tenant_id=a.id, name="shop.test", ownership_token="tok", dkim=key
    )
    assert domain.id.startswith("dom_") and domain.bounce_subdomain == "bounces"
    assert (domain.is_active, domain.verified, domain.pending_dkim) == (True, False, None)
    assert await store.domains.get(a.id, domain.id) == domain
    assert await store.domains.get(b.id, domain.id) is None
    assert await store.domains.get_by_name("SHOP.test") == domain
    assert [d.id for d in await store.domains.for_tenant(a.id)] == [domain.id]
    assert await store.domains.for_tenant(b.id) == []
    with pytest.raises(DomainExistsError):
        await store.domains.create(tenant_id=b.id, name="shop.test", ownership_token="t", dkim=key)
    assert await store.domains.set_active(b.id, domain.id, False) is None
    assert await store.domains.stage_dkim(b.id, domain.id, key) is None
    assert not await store.domains.delete(b.id, domain.id)
    assert await store.domains.delete(a.id, domain.id)
    assert await store.domains.get(a.id, domain.id) is None


async def test_store_sending_domain_needs_verified_and_active(store: Store) -> None:
    t = await store.tenants.create("T")
    d = await store.domains.create(
        tenant_id=t.id, name="shop.test", ownership_token="tok", dkim=_key("py20260101aaaa")
    )
    assert await store.domains.sending_domain(t.id, "shop.test") is None
    checked = await store.domains.record_check(
        t.id, d.id, verified=True, result={"records": []}, checked_at=1000.0
    )
    assert checked is not None
    assert (checked.verified, checked.verified_at, checked.last_checked_at) == (
        True,
        1000.0,
        1000.0,
    )
    assert checked.last_check == {"records": []}
    assert (await store.domains.sending_domain(t.id, "Shop.Test")) == checked
    again = await store.domains.record_check(
        t.id, d.id, verified=True, result={}, checked_at=2000.0
    )
    assert again is not None and again.verified_at == 1000.0, "verified_at: when it became so"
    await store.domains.set_active(t.id, d.id, False)
    assert await store.domains.sending_domain(t.id, "shop.test") is None
    await store.domains.set_active(t.id, d.id, True)
    failed = await store.domains.record_check(t.id, d.id, verified=False, result={}, checked_at=3e3)
    assert failed is not None and not failed.verified and failed.verified_at == 1000.0
    assert await store.domains.sending_domain(t.id, "shop.test") is None
    other = await store.tenants.create("O")
    assert await store.domains.record_check(other.id, d.id, verified=True, result={}) is None


async def test_store_dkim_rotation_promotes_only_the_verified_pending_key(store: Store) -> None:
    t = await store.tenants.create("T")
    old, new, newer = _key("py20260101aaaa"), _key("py20260102bbbb"), _key("py20260103cccc")
    d = await store.domains.create(tenant_id=t.id, name="shop.test", ownership_token="x", dkim=old)
    staged = await store.domains.stage_dkim(t.id, d.id, new)
    assert staged is not None and staged.pending_dkim == new and staged.dkim == old
    assert signing_material(staged, BOX).selector == "py20260101aaaa"

    # A check of "new" finishing after "newer" was staged must not promote "newer".
    await store.domains.stage_dkim(t.id, d.id, newer)
    stale = await store.domains.record_check(
        t.id, d.id, verified=True, result={}, promote_selector="py20260102bbbb"
    )
    assert stale is not None and stale.dkim == old and stale.pending_dkim == newer

    promoted = await store.domains.record_check(
        t.id, d.id, verified=True, result={}, promote_selector="py20260103cccc"
    )
    assert promoted is not None and promoted.dkim == newer and promoted.pending_dkim is None
    material = signing_material(promoted, BOX)
    assert material.algorithm is DkimAlgorithm.ED25519_SHA256
    assert public_txt_value(load_private_key(material.private_key_pem)) == newer.public_txt
    assert "PRIVATE" not in repr(material)

    await store.domains.stage_dkim(t.id, d.id, new)
    now = await store.domains.promote_dkim(t.id, d.id)
    assert now is not None and now.dkim == new and now.pending_dkim is None


def test_spf_configuration_keys_are_checked_at_load() -> None:
    from appliance.config import ConfigError, load_config

    env = {"POSTYARD_OUTBOUND_IPS": "192.0.2.10, 2001:db8::/64", "POSTYARD_SPF_INCLUDE": "x.test"}
    config = load_config(environ=env)
    assert config.outbound_ips == ("192.0.2.10", "2001:db8::/64")
    assert config.spf_include == "x.test"
    with pytest.raises(ConfigError, match=r"outbound_ips: 'mx\.example' is not an IP"):
        load_config(environ={"POSTYARD_OUTBOUND_IPS": "mx.example"})
    with pytest.raises(ConfigError, match="spf_include: expected a domain name"):
        load_config(environ={"POSTYARD_SPF_INCLUDE": "include:_spf.x.test"})
