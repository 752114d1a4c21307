"""Suppression endpoints at their edges (httpx): paths, filters, bulk forms, errors."""

from __future__ import annotations

import pytest
import trio
from python_http_client.exceptions import BadRequestsError

from appliance.store.suppressions import SuppressionFilter
from tests.support.appliance import RunningAppliance
from tests.support.suppressions import client, http, seed


async def test_email_filter_takes_underscore_and_backslash_literally(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    for email in ("x_y@example.org", "xzy@example.org", "p\\q@example.org", "pq@example.org"):
        await seed(app, "blocks", email, 10)
    async with http(app) as h:
        underscore = (await h.get("/v3/suppression/blocks", params={"email": "x_y"})).json()
        backslash = (await h.get("/v3/suppression/blocks", params={"email": "p\\"})).json()
    assert [e["email"] for e in underscore] == ["x_y@example.org"]
    assert [e["email"] for e in backslash] == ["p\\q@example.org"]


async def test_global_unsubscribe_rejects_bad_addresses(appliance_any_db: RunningAppliance) -> None:
    app = appliance_any_db
    async with http(app) as h:
        r = await h.post(
            "/v3/asm/suppressions/global",
            json={"recipient_emails": ["ok@example.org", "not an address", "x@"]},
        )
        assert r.status_code == 400
        fields = [e["field"] for e in r.json()["errors"]]
        assert fields == ["recipient_emails.1", "recipient_emails.2"]
        assert "not a valid email address" in r.json()["errors"][0]["message"]
        r = await h.post("/v3/asm/suppressions/global", json={"recipient_emails": []})
        assert r.status_code == 400
        assert r.json()["errors"][0]["field"] == "recipient_emails"
        listed = (await h.get("/v3/suppression/unsubscribes")).json()
    assert listed == []  # nothing of a refused request was added


async def test_addresses_with_plus_and_at_are_taken_unencoded_in_paths(
    appliance: RunningAppliance,
) -> None:
    for email in ("a+b@example.com", "odd/name@example.com", "x.y+tag@sub.example.com"):
        await seed(appliance, "bounces", email, 50, reason="550", status="5.1.1")
    async with http(appliance) as h:
        r = await h.get("/v3/suppression/bounces/A+B@example.com")
        assert r.request.url.raw_path == b"/v3/suppression/bounces/A+B@example.com"
        assert r.status_code == 200 and r.json()[0]["email"] == "a+b@example.com"
        encoded = await h.get("/v3/suppression/bounces/a%2Bb%40example.com")
        assert encoded.json() == r.json()
        odd = await h.get("/v3/suppression/bounces/odd/name@example.com")
        assert odd.json()[0]["email"] == "odd/name@example.com"
        r = await h.delete("/v3/suppression/bounces/x.y+tag@sub.example.com")
        assert r.request.url.raw_path.endswith(b"/x.y+tag@sub.example.com")
        assert r.status_code == 204
        g = await h.get("/v3/asm/suppressions/global/a+b@example.com")
        assert g.status_code == 200 and g.json() == {}
    left = await appliance.ctx.store.suppressions.page(
        appliance.init.tenant_id, "bounces", SuppressionFilter()
    )
    assert sorted(e.email for e in left) == ["a+b@example.com", "odd/name@example.com"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
        ("start_time=yesterday", "start_time"),
        ("end_time=2026-01-01", "end_time"),
        ("start_time=200&end_time=100", "end_time"),
    ],
)
async def test_bad_list_filters_are_400_naming_the_field(
    appliance: RunningAppliance, query: str, field: str
) -> None:
    async with http(appliance) as h:
        r = await h.get(f"/v3/suppression/blocks?{query}")
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["field"] == field
    assert field in error["message"]


async def test_bulk_delete_needs_exactly_one_form(appliance: RunningAppliance) -> None:
    await seed(appliance, "bounces", "keep@example.org", 10)
    async with http(appliance) as h:
        both = await h.request(
            "DELETE",
            "/v3/suppression/bounces",
            json={"delete_all": True, "emails": ["keep@example.org"]},
        )
        neither = await h.request("DELETE", "/v3/suppression/bounces", json={})
        nothing = await h.request("DELETE", "/v3/suppression/bounces", json={"delete_all": False})
        no_body = await h.delete("/v3/suppression/bounces")
        wrong_type = await h.request(
            "DELETE", "/v3/suppression/bounces", json={"emails": "keep@example.org"}
        )
        left = (await h.get("/v3/suppression/bounces")).json()
    assert [r.status_code for r in (both, neither, nothing, no_body, wrong_type)] == [400] * 5
    assert both.json()["errors"][0]["field"] == "delete_all"
    assert "not both" in both.json()["errors"][0]["message"]
    assert neither.json()["errors"][0]["field"] == "emails"
    assert "delete_all" in neither.json()["errors"][0]["message"]
    assert nothing.json()["errors"][0]["field"] == "emails"
    assert "request body is required" in no_body.json()["errors"][0]["message"]
    assert wrong_type.json()["errors"][0]["field"] == "emails"
    assert [e["email"] for e in left] == ["keep@example.org"]


async def test_unknown_list_and_absent_entry_are_404(appliance: RunningAppliance) -> None:
    async with http(appliance) as h:
        unknown = await h.get("/v3/suppression/greylist")
        absent = await h.delete("/v3/suppression/invalid_emails/nobody@example.org")
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["message"] == "not found"
    assert absent.status_code == 404
    assert absent.json()["errors"][0] == {
        "message": "nobody@example.org is not on the invalid emails list",
        "field": "email",
        "help": None,
    }


async def test_bad_request_from_the_sendgrid_client_carries_the_field(
    appliance: RunningAppliance,
) -> None:
    def scenario() -> BadRequestsError:
        with pytest.raises(BadRequestsError) as caught:
            client(appliance).client.suppression.bounces.get(query_params={"limit": 1000})
        return caught.value

    error = await trio.to_thread.run_sync(scenario)
    assert error.to_dict["errors"][0]["field"] == "limit"


async def test_suppression_routes_are_in_the_openapi_document(appliance: RunningAppliance) -> None:
    async with http(appliance) as h:
        paths = (await h.get("/openapi.json")).json()["paths"]
    for list_name in ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes"):
        assert set(paths[f"/v3/suppression/{list_name}"]) == {"get", "delete"}
        assert set(paths[f"/v3/suppression/{list_name}/{{email}}"]) == {"get", "delete"}
    assert "post" in paths["/v3/asm/suppressions/global"]
    assert set(paths["/v3/asm/suppressions/global/{email}"]) == {"get", "delete"}
    assert paths["/v3/suppression/bounces"]["get"]["tags"] == ["Suppressions"]
