"""``/v3/templates`` and versions over HTTP (httpx) and with the official ``sendgrid`` client."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import trio
from python_http_client.exceptions import BadRequestsError, NotFoundError
from sendgrid import SendGridAPIClient

from appliance.provisioning import create_full_access_key
from tests.support.appliance import RunningAppliance

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def _template(
    http: httpx.AsyncClient, auth: dict[str, str], name: str = "t", generation: str = "dynamic"
) -> dict[str, Any]:
    r = await http.post(
        "/v3/templates", headers=auth, json={"name": name, "generation": generation}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _version(
    http: httpx.AsyncClient, auth: dict[str, str], template_id: str, **fields: Any
) -> dict[str, Any]:
    payload = {"name": "v", "subject": "Hello {{name}}", **fields}
    r = await http.post(f"/v3/templates/{template_id}/versions", headers=auth, json=payload)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _active(http: httpx.AsyncClient, auth: dict[str, str], template_id: str) -> list[str]:
    versions = (await http.get(f"/v3/templates/{template_id}", headers=auth)).json()["versions"]
    return [v["id"] for v in versions if v["active"] == 1]


async def test_create_get_rename_delete_template(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    created = await _template(http, auth, "Welcome", "dynamic")
    assert re.fullmatch(r"d-[0-9a-f]{32}", created["id"])
    assert created["name"] == "Welcome" and created["generation"] == "dynamic"
    assert TIMESTAMP.match(created["updated_at"]) and created["versions"] == []

    legacy = await _template(http, auth, "Old", "legacy")
    assert UUID.match(legacy["id"]) and legacy["generation"] == "legacy"
    default = await http.post("/v3/templates", headers=auth, json={"name": "no generation"})
    assert default.json()["generation"] == "legacy", "SendGrid's default generation"

    got = await http.get(f"/v3/templates/{created['id']}", headers=auth)
    assert got.status_code == 200 and got.json() == created

    renamed = await http.patch(f"/v3/templates/{created['id']}", headers=auth, json={"name": "Hi"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Hi"
    assert renamed.json()["id"] == created["id"]

    deleted = await http.delete(f"/v3/templates/{created['id']}", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await http.get(f"/v3/templates/{created['id']}", headers=auth)
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["field"] == "template_id"
    again = await http.delete(f"/v3/templates/{created['id']}", headers=auth)
    assert again.status_code == 404


async def test_list_filters_generations_defaulting_to_legacy_and_pages(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    dynamic = [(await _template(http, auth, f"d{i}", "dynamic"))["id"] for i in range(3)]
    legacy = (await _template(http, auth, "l", "legacy"))["id"]

    plain = (await http.get("/v3/templates", headers=auth)).json()
    assert [t["id"] for t in plain["result"]] == [legacy], "SendGrid lists legacy by default"
    assert plain["templates"] == plain["result"], "the pre-paging shape, for older clients"

    both = await http.get(
        "/v3/templates", headers=auth, params={"generations": "legacy,dynamic", "page_size": 10}
    )
    body = both.json()
    assert {t["id"] for t in body["result"]} == {*dynamic, legacy}
    assert "templates" not in body
    assert body["_metadata"]["count"] == 4 and "next" not in body["_metadata"]

    seen: list[str] = []
    params: dict[str, Any] = {"generations": "dynamic", "page_size": 2}
    page = (await http.get("/v3/templates", headers=auth, params=params)).json()
    seen += [t["id"] for t in page["result"]]
    assert page["_metadata"]["count"] == 3
    next_url = page["_metadata"]["next"]
    assert next_url.startswith(appliance.base_url + "/v3/templates?")
    page = (await http.get(next_url, headers=auth)).json()
    seen += [t["id"] for t in page["result"]]
    assert "next" not in page["_metadata"]
    assert seen == dynamic


async def test_list_shows_versions_without_their_content(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    template = await _template(http, auth)
    version = await _version(http, auth, template["id"], html_content="<p>{{name}}</p>")
    listed = (
        await http.get("/v3/templates", headers=auth, params={"generations": "dynamic"})
    ).json()["result"]
    (lean,) = listed[0]["versions"]
    assert lean["id"] == version["id"] and lean["active"] == 1
    assert "html_content" not in lean
    full = (await http.get(f"/v3/templates/{template['id']}", headers=auth)).json()
    assert full["versions"][0]["html_content"] == "<p>{{name}}</p>"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"generations": "modern"}, "generations"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_size": "2", "page_token": "!!!"}, "page_token"),
    ],
)
async def test_list_parameter_errors_name_the_parameter(
    http: httpx.AsyncClient, appliance: RunningAppliance, params: dict[str, str], field: str
) -> None:
    r = await http.get("/v3/templates", headers=appliance.auth(), params=params)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == field


async def test_versions_create_get_update_delete(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    template = await _template(http, auth)
    tid = template["id"]
    version = await _version(
        http,
        auth,
        tid,
        html_content="<p>Hi {{name}}</p>",
        plain_content="Hi {{name}}",
        generate_plain_content=False,
        editor="design",
        test_data='{"name": "Ann"}',
    )
    assert UUID.match(version["id"])
    assert version == {
        "id": version["id"],
        "template_id": tid,
        "active": 1,
        "name": "v",
        "subject": "Hello {{name}}",
        "updated_at": version["updated_at"],
        "generate_plain_content": False,
        "editor": "design",
        "html_content": "<p>Hi {{name}}</p>",
        "plain_content": "Hi {{name}}",
        "test_data": '{"name": "Ann"}',
    }
    url = f"/v3/templates/{tid}/versions/{version['id']}"
    assert (await http.get(url, headers=auth)).json() == version

    patched = await http.patch(url, headers=auth, json={"subject": "Bye {{name}}"})
    assert patched.status_code == 200
    assert patched.json()["subject"] == "Bye {{name}}"
    assert patched.json()["html_content"] == "<p>Hi {{name}}</p>", "untouched fields stay"

    # A client echoing a whole version object back (id, updated_at…) is fine.
    echoed = await http.patch(url, headers=auth, json={**patched.json(), "name": "renamed"})
    assert echoed.status_code == 200 and echoed.json()["name"] == "renamed"

    template_view = (await http.get(f"/v3/templates/{tid}", headers=auth)).json()
    assert [v["id"] for v in template_view["versions"]] == [version["id"]]

    assert (await http.delete(url, headers=auth)).status_code == 204
    assert (await http.get(url, headers=auth)).status_code == 404
    assert (await http.delete(url, headers=auth)).status_code == 404
    assert (await http.get(f"/v3/templates/{tid}", headers=auth)).json()["versions"] == []


async def test_activation_rules_keep_exactly_one_active_version(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth))["id"]
    first = await _version(http, auth, tid, name="first", active=0)
    assert first["active"] == 1, "the first version is active even when sent as 0"
    second = await _version(http, auth, tid, name="second")
    assert second["active"] == 0
    third = await _version(http, auth, tid, name="third", active=1)
    assert third["active"] == 1
    assert await _active(http, auth, tid) == [third["id"]]

    activated = await http.post(
        f"/v3/templates/{tid}/versions/{second['id']}/activate", headers=auth
    )
    assert activated.status_code == 200 and activated.json()["active"] == 1
    assert activated.json()["id"] == second["id"]
    assert await _active(http, auth, tid) == [second["id"]]

    by_patch = await http.patch(
        f"/v3/templates/{tid}/versions/{first['id']}", headers=auth, json={"active": 1}
    )
    assert by_patch.json()["active"] == 1
    assert await _active(http, auth, tid) == [first["id"]]

    refused = await http.patch(
        f"/v3/templates/{tid}/versions/{first['id']}", headers=auth, json={"active": 0}
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "active"
    assert await _active(http, auth, tid) == [first["id"]]

    await http.delete(f"/v3/templates/{tid}/versions/{first['id']}", headers=auth)
    assert len(await _active(http, auth, tid)) == 1, "deleting the active one promotes another"

    store = appliance.ctx.store
    found = await store.templates.active_version(appliance.init.tenant_id, tid)
    assert found is not None and [found[1].id] == await _active(http, auth, tid)


@pytest.mark.parametrize(
    ("field", "text", "where"),
    [
        ("html_content", "<p>\n  {{#if vip}}\n</p>", "line 2, column 3"),
        ("subject", "Hi {{name", "line 1, column 4"),
        ("plain_content", "{{bogus name}}", "line 1, column 3"),
    ],
)
async def test_broken_handlebars_cannot_be_saved(
    http: httpx.AsyncClient, appliance: RunningAppliance, field: str, text: str, where: str
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth))["id"]
    body = {"name": "v", "subject": "ok", field: text}
    r = await http.post(f"/v3/templates/{tid}/versions", headers=auth, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert error["field"] == field
    assert where in error["message"] and "Handlebars" in error["message"]
    assert (await http.get(f"/v3/templates/{tid}", headers=auth)).json()["versions"] == []

    good = await _version(http, auth, tid)
    r = await http.patch(
        f"/v3/templates/{tid}/versions/{good['id']}", headers=auth, json={field: text}
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field
    unchanged = await http.get(f"/v3/templates/{tid}/versions/{good['id']}", headers=auth)
    assert unchanged.json() == good


async def test_every_broken_part_is_reported(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth))["id"]
    r = await http.post(
        f"/v3/templates/{tid}/versions",
        headers=auth,
        json={"name": "v", "subject": "{{#if a}}", "html_content": "{{/each}}"},
    )
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == ["subject", "html_content"]


async def test_legacy_templates_are_not_parsed_as_handlebars(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth, generation="legacy"))["id"]
    version = await _version(http, auth, tid, subject="<%subject%>", html_content="{{#if <%body%>")
    assert version["html_content"] == "{{#if <%body%>"


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("", {}, "name", "name missing required argument"),
        ("", {"name": ""}, "name", "name must not be empty"),
        ("", {"name": "x" * 101}, "name", "name is too long"),
        ("", {"name": "x", "generation": "modern"}, "generation", None),
        ("/versions", {"subject": "s"}, "name", "name missing required argument"),
        ("/versions", {"name": "v"}, "subject", "subject missing required argument"),
        ("/versions", {"name": "v", "subject": "s" * 256}, "subject", "subject is too long"),
        ("/versions", {"name": "v", "subject": "s", "active": 2}, "active", None),
        ("/versions", {"name": "v", "subject": "s", "editor": "vim"}, "editor", None),
        ("/versions", {"name": "v", "subject": "s", "test_data": {}}, "test_data", None),
        (
            "/versions",
            {"name": "v", "subject": "s", "html_content": "x" * 1_048_577},
            "html_content",
            None,
        ),
    ],
)
async def test_validation_errors_in_sendgrid_shape_name_the_field(
    http: httpx.AsyncClient,
    appliance: RunningAppliance,
    path: str,
    body: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    auth = appliance.auth()
    base = "/v3/templates"
    if path:
        base = f"/v3/templates/{(await _template(http, auth))['id']}"
    r = await http.post(base + path, headers=auth, json=body)
    assert r.status_code == 400, r.text
    (error,) = r.json()["errors"]
    assert set(error) == {"message", "field", "help"}
    assert error["field"] == field
    if message is not None:
        assert error["message"] == message


async def test_preview_renders_with_data_or_test_data(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth))["id"]
    version = await _version(
        http,
        auth,
        tid,
        subject="Hi {{name}}",
        html_content="<p>{{#if vip}}VIP {{/if}}{{name}}</p>",
        plain_content="Hi {{name}}",
        test_data='{"name": "Tester"}',
    )
    url = f"/v3/templates/{tid}/versions/{version['id']}/preview"
    r = await http.post(
        url, headers=auth, json={"dynamic_template_data": {"name": "<Ann>", "vip": True}}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subject"] == "Hi &lt;Ann&gt;"
    assert body["html_content"] == "<p>VIP &lt;Ann&gt;</p>"
    assert body["plain_content"] == "Hi &lt;Ann&gt;"

    with_test_data = (await http.post(url, headers=auth)).json()
    assert with_test_data["subject"] == "Hi Tester"

    bad = await http.post(url, headers=auth, json={"dynamic_template_data": [1]})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "dynamic_template_data"


async def test_preview_of_a_legacy_template_applies_substitutions(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth, generation="legacy"))["id"]
    version = await _version(http, auth, tid, subject="Hi -name-", html_content="<p>-name-</p>")
    r = await http.post(
        f"/v3/templates/{tid}/versions/{version['id']}/preview",
        headers=auth,
        json={"substitutions": {"-name-": "Ann"}},
    )
    assert r.status_code == 200
    assert (r.json()["subject"], r.json()["html_content"]) == ("Hi Ann", "<p>Ann</p>")


async def test_duplicate_copies_versions_under_a_new_id(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    original = await _template(http, auth, "Orig")
    await _version(http, auth, original["id"], name="a")
    r = await http.post(f"/v3/templates/{original['id']}", headers=auth, json={"name": "Dup"})
    assert r.status_code == 201
    dup = r.json()
    assert dup["id"] != original["id"] and dup["id"].startswith("d-")
    assert dup["name"] == "Dup" and [v["name"] for v in dup["versions"]] == ["a"]
    unnamed = await http.post(f"/v3/templates/{original['id']}", headers=auth, json={})
    assert unnamed.json()["name"] == "Orig Copy"


async def test_another_tenants_templates_are_404(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    store = appliance.ctx.store
    other_tenant = await store.tenants.create("Other")
    other = appliance.auth(await create_full_access_key(store, other_tenant.id, "other"))
    auth = appliance.auth()
    tid = (await _template(http, auth))["id"]
    vid = (await _version(http, auth, tid))["id"]

    listed = await http.get(
        "/v3/templates", headers=other, params={"generations": "legacy,dynamic"}
    )
    assert listed.json()["result"] == [] and listed.json()["_metadata"]["count"] == 0
    version_url = f"/v3/templates/{tid}/versions/{vid}"
    attempts = [
        ("GET", f"/v3/templates/{tid}", None),
        ("PATCH", f"/v3/templates/{tid}", {"name": "x"}),
        ("POST", f"/v3/templates/{tid}", {"name": "x"}),
        ("DELETE", f"/v3/templates/{tid}", None),
        ("POST", f"/v3/templates/{tid}/versions", {"name": "v", "subject": "s"}),
        ("GET", version_url, None),
        ("PATCH", version_url, {"name": "x"}),
        ("DELETE", version_url, None),
        ("POST", f"{version_url}/activate", None),
        ("POST", f"{version_url}/preview", {}),
    ]
    for method, url, body in attempts:
        r = await http.request(method, url, headers=other, json=body)
        assert r.status_code == 404, (method, url, r.text)
        assert r.json()["errors"][0]["field"] == "template_id"
    mine = (await http.get(f"/v3/templates/{tid}", headers=auth)).json()
    assert mine["name"] == "t" and [v["id"] for v in mine["versions"]] == [vid]


async def test_a_version_is_reached_only_through_its_own_template(
    http: httpx.AsyncClient, appliance: RunningAppliance
) -> None:
    auth = appliance.auth()
    one = (await _template(http, auth))["id"]
    two = (await _template(http, auth))["id"]
    vid = (await _version(http, auth, one))["id"]
    r = await http.get(f"/v3/templates/{two}/versions/{vid}", headers=auth)
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "version_id"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v3/templates", "templates.create"),
        ("GET", "/v3/templates", "templates.read"),
        ("GET", "/v3/templates/{t}", "templates.read"),
        ("PATCH", "/v3/templates/{t}", "templates.update"),
        ("DELETE", "/v3/templates/{t}", "templates.delete"),
        ("POST", "/v3/templates/{t}/versions", "templates.versions.create"),
        ("GET", "/v3/templates/{t}/versions/{v}", "templates.versions.read"),
        ("PATCH", "/v3/templates/{t}/versions/{v}", "templates.versions.update"),
        ("DELETE", "/v3/templates/{t}/versions/{v}", "templates.versions.delete"),
        ("POST", "/v3/templates/{t}/versions/{v}/activate", "templates.versions.update"),
        ("POST", "/v3/templates/{t}/versions/{v}/preview", "templates.versions.read"),
    ],
)
async def test_missing_scope_is_403_naming_it(
    http: httpx.AsyncClient, appliance: RunningAppliance, method: str, path: str, scope: str
) -> None:
    auth = appliance.auth()
    tid = (await _template(http, auth))["id"]
    vid = (await _version(http, auth, tid))["id"]
    narrow = (
        await http.post(
            "/v3/api_keys", headers=auth, json={"name": "narrow", "scopes": ["mail.send"]}
        )
    ).json()["api_key"]
    r = await http.request(
        method,
        path.format(t=tid, v=vid),
        headers=appliance.auth(narrow),
        json={"name": "x", "subject": "s"},
    )
    assert r.status_code == 403
    assert r.json()["errors"][0]["message"] == f"Missing required scope: {scope}"


async def test_templates_appear_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"get", "post"} <= set(paths["/v3/templates"])
    assert "post" in paths["/v3/templates/{template_id}/versions/{version_id}/activate"]


# ---------------------------------------------------------------- the sendgrid client


async def test_sendgrid_client_manages_templates_and_versions(
    appliance: RunningAppliance,
) -> None:
    def scenario() -> dict[str, Any]:
        sg = SendGridAPIClient(api_key=appliance.api_key, host=appliance.base_url)
        out: dict[str, Any] = {}
        created = sg.client.templates.post(
            request_body={"name": "sg-client", "generation": "dynamic"}
        )
        out["created_status"] = created.status_code
        template = json.loads(created.body)
        out["template"] = template
        tpl = sg.client.templates._(template["id"])
        v1 = tpl.versions.post(
            request_body={
                "name": "v1",
                "subject": "Hi {{name}}",
                "html_content": "<p>{{name}}</p>",
                "plain_content": "{{name}}",
                "active": 1,
            }
        )
        out["v1_status"] = v1.status_code
        out["v1"] = json.loads(v1.body)
        v2 = json.loads(tpl.versions.post(request_body={"name": "v2", "subject": "Yo"}).body)
        out["v2"] = v2
        activated = tpl.versions._(v2["id"]).activate.post()
        out["activated"] = json.loads(activated.body)
        patched = tpl.versions._(v2["id"]).patch(request_body={"subject": "Yo {{name}}"})
        out["patched"] = json.loads(patched.body)
        out["fetched_version"] = json.loads(tpl.versions._(out["v1"]["id"]).get().body)
        out["renamed"] = json.loads(tpl.patch(request_body={"name": "renamed"}).body)
        listed = sg.client.templates.get(query_params={"generations": "dynamic", "page_size": 18})
        out["listed"] = json.loads(listed.body)
        out["fetched"] = json.loads(tpl.get().body)
        with pytest.raises(BadRequestsError) as broken:
            tpl.versions.post(request_body={"name": "v3", "subject": "{{#if x}}"})
        out["broken"] = broken.value.to_dict
        out["version_deleted"] = tpl.versions._(out["v1"]["id"]).delete().status_code
        out["deleted"] = tpl.delete().status_code
        with pytest.raises(NotFoundError) as missing:
            tpl.get()
        out["missing"] = missing.value.to_dict
        return out

    out = await trio.to_thread.run_sync(scenario)
    template = out["template"]
    assert out["created_status"] == 201 and template["generation"] == "dynamic"
    assert template["id"].startswith("d-") and template["versions"] == []
    assert out["v1_status"] == 201 and out["v1"]["active"] == 1
    assert out["v1"]["template_id"] == template["id"]
    assert out["v2"]["active"] == 0
    assert out["activated"]["id"] == out["v2"]["id"] and out["activated"]["active"] == 1
    assert out["patched"]["subject"] == "Yo {{name}}"
    assert out["fetched_version"]["active"] == 0 and out["fetched_version"]["name"] == "v1"
    assert out["renamed"]["name"] == "renamed"
    assert [t["id"] for t in out["listed"]["result"]] == [template["id"]]
    assert out["listed"]["_metadata"]["count"] == 1
    active = [v["id"] for v in out["fetched"]["versions"] if v["active"] == 1]
    assert active == [out["v2"]["id"]]
    assert out["broken"]["errors"][0]["field"] == "subject"
    assert out["version_deleted"] == 204 and out["deleted"] == 204
    assert out["missing"]["errors"][0]["message"] == "template not found"
