"""``/v3/api_keys``, ``/v3/scopes`` and ``/v3/auth/me`` over real HTTP (httpx)."""

from __future__ import annotations

import httpx
import pytest

from appliance.provisioning import create_full_access_key
from tests.support.appliance import RunningAppliance

AUTH_REQUIRED = {"errors": [{"field": None, "message": "authorization required", "help": None}]}


async def test_missing_key_is_401_in_sendgrid_shape(http: httpx.AsyncClient) -> None:
    r = await http.get("/v3/api_keys")
    assert r.status_code == 401
    assert r.json() == AUTH_REQUIRED
    assert r.headers["X-Request-ID"]


async def test_wrong_key_is_401(http: httpx.AsyncClient) -> None:
    r = await http.get("/v3/scopes", headers={"Authorization": "Bearer SG.nope.nope"})
    assert r.status_code == 401
    assert "invalid" in r.json()["errors"][0]["message"]


async def test_client_request_id_is_echoed(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    r = await http.get("/v3/scopes", headers={**appliance.auth(), "X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"


async def test_rate_limit_headers_on_every_api_response(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    r1 = await http.get("/v3/scopes", headers=appliance.auth())
    r2 = await http.get("/v3/scopes", headers=appliance.auth())
    limit = int(r1.headers["X-RateLimit-Limit"])
    assert int(r1.headers["X-RateLimit-Remaining"]) == limit - 1
    assert int(r2.headers["X-RateLimit-Remaining"]) == limit - 2
    assert int(r1.headers["X-RateLimit-Reset"]) > 1_700_000_000


async def test_create_list_get_rename_replace_delete(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    created = await http.post(
        "/v3/api_keys", headers=auth, json={"name": "sender", "scopes": ["mail.send"]}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["api_key"].startswith("SG.") and len(body["api_key"]) == 69
    assert body["api_key"].split(".")[1] == body["api_key_id"]
    assert body["name"] == "sender" and body["scopes"] == ["mail.send"]
    key_id = body["api_key_id"]

    listed = (await http.get("/v3/api_keys", headers=auth)).json()["result"]
    assert {"name": "sender", "api_key_id": key_id} in listed
    assert all("api_key" not in k for k in listed), "secrets are never listed"

    one = (await http.get(f"/v3/api_keys/{key_id}", headers=auth)).json()
    assert one["result"] == [{"api_key_id": key_id, "name": "sender", "scopes": ["mail.send"]}]
    assert one["api_key_id"] == key_id and one["scopes"] == ["mail.send"]

    renamed = await http.patch(f"/v3/api_keys/{key_id}", headers=auth, json={"name": "renamed"})
    assert renamed.json() == {"api_key_id": key_id, "name": "renamed"}

    replaced = await http.put(
        f"/v3/api_keys/{key_id}",
        headers=auth,
        json={"name": "stats", "scopes": ["stats.read", "mail.send"]},
    )
    assert replaced.json() == {
        "api_key_id": key_id,
        "name": "stats",
        "scopes": ["mail.send", "stats.read"],
    }

    deleted = await http.delete(f"/v3/api_keys/{key_id}", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await http.get(f"/v3/api_keys/{key_id}", headers=auth)
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["field"] == "api_key_id"
    old_key = await http.get("/v3/scopes", headers=appliance.auth(body["api_key"]))
    assert old_key.status_code == 401, "a deleted key stops working on this node at once"


async def test_new_key_sees_its_own_scopes_and_gets_403_naming_the_missing_one(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    created = (
        await http.post(
            "/v3/api_keys",
            headers=appliance.auth(),
            json={"name": "narrow", "scopes": ["mail.send"]},
        )
    ).json()
    narrow = appliance.auth(created["api_key"])
    assert (await http.get("/v3/scopes", headers=narrow)).json() == {"scopes": ["mail.send"]}
    me = (await http.get("/v3/auth/me", headers=narrow)).json()
    assert me["caller"] == {
        "type": "api_key",
        "api_key_id": created["api_key_id"],
        "name": "narrow",
    }
    assert me["tenant"]["id"] == appliance.init.tenant_id
    assert me["scopes"] == ["mail.send"]

    r = await http.get("/v3/api_keys", headers=narrow)
    assert r.status_code == 403
    assert r.json()["errors"][0]["message"] == "Missing required scope: api_keys.read"


async def test_key_without_scopes_gets_the_callers_scopes(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    full = (await http.get("/v3/scopes", headers=appliance.auth())).json()["scopes"]
    created = (
        await http.post("/v3/api_keys", headers=appliance.auth(), json={"name": "full"})
    ).json()
    assert created["scopes"] == full


async def test_a_key_cannot_grant_scopes_it_does_not_hold(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    limited = (
        await http.post(
            "/v3/api_keys",
            headers=appliance.auth(),
            json={"name": "km", "scopes": ["api_keys.create"]},
        )
    ).json()
    r = await http.post(
        "/v3/api_keys",
        headers=appliance.auth(limited["api_key"]),
        json={"name": "escalate", "scopes": ["mail.send"]},
    )
    assert r.status_code == 403
    assert r.json()["errors"][0] == {
        "message": "cannot grant scopes the calling key does not hold: mail.send",
        "field": "scopes",
        "help": None,
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "name missing required argument"),
        ({"name": ""}, "name", "name must not be empty"),
        ({"name": 5}, "name", "name must be a string"),
        ({"name": "x", "scopes": "mail.send"}, "scopes", "scopes must be an array"),
        ({"name": "x", "scopes": ["mail.send", "no.such"]}, "scopes", "unknown scopes: no.such"),
    ],
)
async def test_create_validation_errors_name_the_field(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    body: dict[str, object],
    field: str,
    message: str,
) -> None:
    r = await http.post("/v3/api_keys", headers=appliance.auth(), json=body)
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert (error["field"], error["message"]) == (field, message)


async def test_malformed_json_and_form_encoded_json(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    bad = await http.post("/v3/api_keys", headers=appliance.auth(), content=b"{nope")
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["errors"][0]["message"]
    # curl -d sends application/x-www-form-urlencoded; the JSON body is still read.
    curl_like = await http.post(
        "/v3/api_keys",
        content=b'{"name":"curl"}',
        headers={**appliance.auth(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert curl_like.status_code == 201


async def test_keys_of_one_tenant_never_see_another_tenants_keys(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    store = appliance.ctx.store
    other_tenant = await store.tenants.create("Other")
    other = appliance.auth(await create_full_access_key(store, other_tenant.id, "other"))
    mine = (
        await http.post("/v3/api_keys", headers=appliance.auth(), json={"name": "mine"})
    ).json()["api_key_id"]

    listed = (await http.get("/v3/api_keys", headers=other)).json()["result"]
    assert mine not in {k["api_key_id"] for k in listed}
    for method in ("GET", "DELETE"):
        r = await http.request(method, f"/v3/api_keys/{mine}", headers=other)
        assert r.status_code == 404
    r = await http.patch(f"/v3/api_keys/{mine}", headers=other, json={"name": "x"})
    assert r.status_code == 404
    assert (await http.get(f"/v3/api_keys/{mine}", headers=appliance.auth())).status_code == 200


async def test_suspended_tenant_is_refused(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    store = appliance.ctx.store
    tenant = await store.tenants.create("Spammy")
    key = await create_full_access_key(store, tenant.id, "k")
    assert (await http.get("/v3/scopes", headers=appliance.auth(key))).status_code == 200
    await store.tenants.set_status(tenant.id, "suspended", "complaints")
    appliance.ctx.authenticator.forget(key.split(".")[1])
    r = await http.get("/v3/scopes", headers=appliance.auth(key))
    assert r.status_code == 403
    assert "suspended" in r.json()["errors"][0]["message"]


async def test_unknown_path_and_wrong_method_use_the_error_shape(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    r = await http.get("/v3/nothing-here", headers=appliance.auth())
    assert r.status_code == 404 and r.json()["errors"][0]["message"] == "not found"
    r = await http.delete("/v3/scopes", headers=appliance.auth())
    assert r.status_code == 405 and r.json()["errors"][0]["message"] == "method not allowed"


async def test_openapi_document_lists_the_api(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert "/v3/api_keys" in doc["paths"] and "post" in doc["paths"]["/v3/api_keys"]
    assert "/readyz" not in doc["paths"]


async def test_key_lifecycle_on_each_database_engine(appliance_any_db: RunningAppliance) -> None:
    app = appliance_any_db
    async with httpx.AsyncClient(base_url=app.base_url) as client:
        created = await client.post(
            "/v3/api_keys", headers=app.auth(), json={"name": "engine", "scopes": ["stats.read"]}
        )
        assert created.status_code == 201
        key_id = created.json()["api_key_id"]
        listed = (await client.get("/v3/api_keys", headers=app.auth())).json()["result"]
        assert key_id in {k["api_key_id"] for k in listed}
        assert (
            await client.delete(f"/v3/api_keys/{key_id}", headers=app.auth())
        ).status_code == 204
        ready = (await client.get("/readyz")).json()
        assert ready["database"]["dialect"] == app.ctx.store.dialect
