"""Suppression endpoints driven by the real ``sendgrid`` client, on both engines."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from python_http_client.exceptions import ForbiddenError, NotFoundError
from sendgrid import SendGridAPIClient

from appliance.provisioning import create_full_access_key
from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain
from tests.support.suppressions import client, http, seed

FROM = "sender@mail.example.test"


async def test_sendgrid_client_lists_bounces_with_filters_and_pages(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await seed(app, "bounces", "old@example.org", 1_000, reason="550 5.1.1 gone", status="5.1.1")
    await seed(
        app, "bounces", "marketing@example.org", 2_000.7, reason="550 5.1.1 x", status="5.1.1"
    )
    await seed(app, "bounces", "sales@example.org", 3_000, reason="552 5.2.2 full", status="5.2.2")
    await seed(app, "bounces", "salesdept@example.net", 4_000, reason="550 5.1.1 y", status="5.1.1")
    await seed(app, "blocks", "sales-blocked@example.org", 2_500)

    def scenario() -> dict[str, Any]:
        bounces = client(app).client.suppression.bounces

        def get(**params: Any) -> Any:
            response = bounces.get(query_params=params)
            assert response.status_code == 200
            return json.loads(response.body)

        return {
            "all": get(),
            "window": get(start_time=2_000, end_time=3_000),
            "page1": get(limit=2),
            "page2": get(limit=2, offset=2),
            "page3": get(limit=2, offset=4),
            "prefix": get(email="sales"),
            "prefix_case": get(email="SALES@"),
            "wildcard": get(email="%market"),
            "wildcard_domain": get(email="%example.net"),
        }

    got = await trio.to_thread.run_sync(scenario)
    emails = {name: [e["email"] for e in value] for name, value in got.items()}
    assert emails["all"] == [
        "salesdept@example.net",
        "sales@example.org",
        "marketing@example.org",
        "old@example.org",
    ]
    assert got["all"][1] == {
        "created": 3000,
        "email": "sales@example.org",
        "reason": "552 5.2.2 full",
        "status": "5.2.2",
    }
    # Inclusive at both ends; 2000.7 counts as second 2000, as ``created`` shows it.
    assert emails["window"] == ["sales@example.org", "marketing@example.org"]
    assert got["window"][1]["created"] == 2000
    assert emails["page1"] + emails["page2"] == emails["all"]
    assert emails["page3"] == []
    assert emails["prefix"] == ["salesdept@example.net", "sales@example.org"]
    assert emails["prefix_case"] == ["sales@example.org"]
    assert emails["wildcard"] == ["marketing@example.org"]
    assert emails["wildcard_domain"] == ["salesdept@example.net"]


async def test_each_list_answers_in_sendgrids_shape(appliance_any_db: RunningAppliance) -> None:
    app = appliance_any_db
    await seed(app, "blocks", "b@example.org", 10, reason="554 5.7.1 blocked", status="5.7.1")
    await seed(app, "spam_reports", "s@example.org", 20, reason="abuse")
    await seed(app, "invalid_emails", "i@example.org", 30, reason="Mail domain is unknown")
    await seed(app, "unsubscribes", "u@example.org", 40)

    def scenario() -> dict[str, Any]:
        s = client(app).client.suppression
        return {
            name: json.loads(getattr(s, name).get().body)
            for name in ("blocks", "spam_reports", "invalid_emails", "unsubscribes")
        }

    got = await trio.to_thread.run_sync(scenario)
    assert got == {
        "blocks": [
            {
                "created": 10,
                "email": "b@example.org",
                "reason": "554 5.7.1 blocked",
                "status": "5.7.1",
            }
        ],
        "spam_reports": [{"created": 20, "email": "s@example.org", "ip": ""}],
        "invalid_emails": [
            {"created": 30, "email": "i@example.org", "reason": "Mail domain is unknown"}
        ],
        "unsubscribes": [{"created": 40, "email": "u@example.org"}],
    }


async def test_sendgrid_client_gets_and_deletes_one_address(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await seed(app, "bounces", "gone@example.org", 100, reason="550 5.1.1", status="5.1.1")
    await seed(app, "blocks", "gone@example.org", 100, reason="554", status="5.7.1")

    def scenario() -> tuple[Any, Any, int, Any, NotFoundError]:
        bounces = client(app).client.suppression.bounces
        one = json.loads(bounces._("Gone@Example.org").get().body)
        absent = json.loads(bounces._("nobody@example.org").get().body)
        deleted = bounces._("gone@example.org").delete().status_code
        after = json.loads(bounces._("gone@example.org").get().body)
        with pytest.raises(NotFoundError) as again:
            bounces._("gone@example.org").delete()
        return one, absent, deleted, after, again.value

    one, absent, deleted, after, again = await trio.to_thread.run_sync(scenario)
    assert one == [
        {"created": 100, "email": "gone@example.org", "reason": "550 5.1.1", "status": "5.1.1"}
    ]
    assert absent == []
    assert deleted == 204
    assert after == []
    error = again.to_dict["errors"][0]
    assert error["field"] == "email"
    assert "not on the bounces list" in error["message"]
    # Only the bounces entry went; the same address stays blocked.
    assert await app.ctx.store.suppressions.get(app.init.tenant_id, "blocks", "gone@example.org")


async def test_sendgrid_client_bulk_deletes_by_address_and_everything(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    for i, name in enumerate(["a", "b", "c", "d"]):
        await seed(app, "spam_reports", f"{name}@example.org", 10 + i)
        await seed(app, "invalid_emails", f"{name}@example.org", 10 + i)

    def scenario() -> tuple[int, list[str], int, list[str], list[str]]:
        s = client(app).client.suppression
        some = s.spam_reports.delete(
            request_body={"emails": ["A@example.org", "c@EXAMPLE.org", "never@example.org"]}
        ).status_code
        left = [e["email"] for e in json.loads(s.spam_reports.get().body)]
        everything = s.invalid_emails.delete(request_body={"delete_all": True}).status_code
        invalid_left = [e["email"] for e in json.loads(s.invalid_emails.get().body)]
        spam_left = [e["email"] for e in json.loads(s.spam_reports.get().body)]
        return some, left, everything, invalid_left, spam_left

    some, left, everything, invalid_left, spam_left = await trio.to_thread.run_sync(scenario)
    assert some == 204
    assert left == ["d@example.org", "b@example.org"]
    assert everything == 204
    assert invalid_left == []
    assert spam_left == left  # delete_all empties only the list it was sent to


async def test_sendgrid_client_manages_global_unsubscribes(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db

    def scenario() -> dict[str, Any]:
        sg = client(app)
        glob = sg.client.asm.suppressions._("global")
        added = glob.post(
            request_body={"recipient_emails": ["Left@Example.org", "bye@example.org"]}
        )
        again = glob.post(request_body={"recipient_emails": ["left@example.org"]})
        listed = json.loads(sg.client.suppression.unsubscribes.get().body)
        return {
            "added": (added.status_code, json.loads(added.body)),
            "again": again.status_code,
            "listed": sorted(e["email"] for e in listed),
            "one": json.loads(glob._("LEFT@example.org").get().body),
            "absent": json.loads(glob._("stay@example.org").get().body),
            "deleted": glob._("left@example.org").delete().status_code,
            "deleted_absent": glob._("stay@example.org").delete().status_code,
            "after": json.loads(glob._("left@example.org").get().body),
        }

    got = await trio.to_thread.run_sync(scenario)
    assert got["added"] == (201, {"recipient_emails": ["Left@Example.org", "bye@example.org"]})
    assert got["again"] == 201
    assert got["listed"] == ["bye@example.org", "left@example.org"]
    assert got["one"] == {"recipient_email": "left@example.org"}
    assert got["absent"] == {}
    assert got["deleted"] == 204
    assert got["deleted_absent"] == 204  # as SendGrid: deleting an absent global entry is 204
    assert got["after"] == {}


async def test_other_tenants_entries_are_invisible(appliance_any_db: RunningAppliance) -> None:
    app = appliance_any_db
    store = app.ctx.store
    other = await store.tenants.create("Other")
    other_key = await create_full_access_key(store, other.id, "other")
    await seed(app, "bounces", "mine@example.org", 10, reason="550", status="5.1.1")
    await seed(app, "unsubscribes", "mine@example.org", 10)
    await seed(app, "bounces", "theirs@example.org", 10, tenant_id=other.id)

    async with http(app, other_key) as h:
        listed = (await h.get("/v3/suppression/bounces")).json()
        one = (await h.get("/v3/suppression/bounces/mine@example.org")).json()
        deleted = await h.delete("/v3/suppression/bounces/mine@example.org")
        glob = (await h.get("/v3/asm/suppressions/global/mine@example.org")).json()
        await h.delete("/v3/asm/suppressions/global/mine@example.org")
        wiped = await h.request("DELETE", "/v3/suppression/bounces", json={"delete_all": True})
    assert [e["email"] for e in listed] == ["theirs@example.org"]
    assert one == []
    assert deleted.status_code == 404
    assert glob == {}
    assert wiped.status_code == 204
    tenant = app.init.tenant_id
    assert await store.suppressions.get(tenant, "bounces", "mine@example.org")
    assert await store.suppressions.get(tenant, "unsubscribes", "mine@example.org")
    assert not await store.suppressions.get(other.id, "bounces", "theirs@example.org")


async def test_scopes_are_per_list(appliance: RunningAppliance) -> None:
    await seed(appliance, "bounces", "x@example.org", 10)
    async with http(appliance) as h:

        async def key(scopes: list[str]) -> str:
            r = await h.post("/v3/api_keys", json={"name": "k", "scopes": scopes})
            token: str = r.json()["api_key"]
            return token

        bounces_reader = await key(["suppression.bounces.read"])
        all_reader = await key(["suppression.read"])
        global_reader = await key(["asm.suppressions.global.read"])

    def scenario() -> tuple[int, ForbiddenError, ForbiddenError, int, ForbiddenError, int]:
        narrow = client(appliance, bounces_reader).client.suppression
        listed = narrow.bounces.get().status_code
        with pytest.raises(ForbiddenError) as blocks:
            narrow.blocks.get()
        with pytest.raises(ForbiddenError) as delete:
            narrow.bounces._("x@example.org").delete()
        wide = client(appliance, all_reader).client.suppression.spam_reports.get().status_code
        g = client(appliance, global_reader).client.asm.suppressions._("global")
        with pytest.raises(ForbiddenError) as post:
            g.post(request_body={"recipient_emails": ["a@example.org"]})
        read = g._("a@example.org").get().status_code
        return listed, blocks.value, delete.value, wide, post.value, read

    listed, blocks, delete, wide, post, read = await trio.to_thread.run_sync(scenario)
    assert listed == wide == read == 200
    assert (
        blocks.to_dict["errors"][0]["message"] == "Missing required scope: suppression.blocks.read"
    )
    assert delete.to_dict["errors"][0]["message"] == (
        "Missing required scope: suppression.bounces.delete"
    )
    assert post.to_dict["errors"][0]["message"] == (
        "Missing required scope: asm.suppressions.global.create"
    )


async def test_removed_suppression_lets_the_next_send_be_queued(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await verified_domain(app, "mail.example.test")
    await seed(app, "bounces", "gone@example.org", 10, reason="550 5.1.1", status="5.1.1")
    body = {
        "personalizations": [
            {"to": [{"email": "Gone@example.org"}]},
            {"to": [{"email": "left@example.org"}]},
        ],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }

    def send_and_statuses(sg: SendGridAPIClient) -> dict[str, str]:
        x_message_id = sg.client.mail.send.post(request_body=body).headers["X-Message-Id"]
        listed = sg.client.messages.get(query_params={"x_message_id": x_message_id})
        return {m["to_email"]: m["status"] for m in json.loads(listed.body)["messages"]}

    def scenario() -> tuple[dict[str, str], dict[str, str]]:
        sg = client(app)
        sg.client.asm.suppressions._("global").post(
            request_body={"recipient_emails": ["left@example.org"]}
        )
        before = send_and_statuses(sg)
        sg.client.suppression.bounces._("gone@example.org").delete()
        sg.client.asm.suppressions._("global")._("left@example.org").delete()
        return before, send_and_statuses(sg)

    before, after = await trio.to_thread.run_sync(scenario)
    assert before == {"Gone@example.org": "FAILED", "left@example.org": "FAILED"}
    assert after == {"Gone@example.org": "QUEUED", "left@example.org": "QUEUED"}
