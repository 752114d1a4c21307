"""Unsubscribe groups through the real ``sendgrid`` client, group drops and group unsubscribes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import trio
from python_http_client.exceptions import BadRequestsError, NotFoundError

from appliance.store.schema import events
from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain
from tests.support.suppressions import client
from tests.support.tracking import (
    DOMAIN,
    events_of,
    mail_body,
    path_of,
    rendered,
    send,
    unsubscribe_url,
)


async def _tenant_events(app: RunningAppliance, kind: str) -> list[Any]:
    def fn(conn: sa.Connection) -> list[Any]:
        return list(conn.execute(sa.select(events).where(events.c.event_type == kind)))

    return await app.ctx.store.db.read(fn)


async def test_sendgrid_client_manages_groups_and_group_suppressions(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db

    def scenario() -> dict[str, Any]:
        asm = client(app).client.asm.groups
        out: dict[str, Any] = {}
        r = asm.post(
            request_body={"name": "Weekly", "description": "Weekly news", "is_default": True}
        )
        assert r.status_code == 201
        weekly = json.loads(r.body)
        out["created"] = weekly
        r = asm.post(request_body={"name": "Offers", "description": "Offers", "is_default": True})
        offers = json.loads(r.body)
        with pytest.raises(BadRequestsError):
            asm.post(request_body={"name": "weekly", "description": "dup"})
        with pytest.raises(BadRequestsError):
            asm.post(request_body={"name": "x" * 31, "description": ""})
        group = asm._(weekly["id"])
        r = group.suppressions.post(
            request_body={"recipient_emails": ["A@Example.org", "b@example.org"]}
        )
        assert r.status_code == 201
        out["posted"] = json.loads(r.body)
        out["members"] = json.loads(group.suppressions.get().body)
        out["search"] = json.loads(
            group.suppressions.search.post(
                request_body={"recipient_emails": ["a@example.org", "z@example.org"]}
            ).body
        )
        out["list"] = json.loads(asm.get().body)
        out["one"] = json.loads(group.get().body)
        out["only_offers"] = json.loads(asm.get(query_params={"id": offers["id"]}).body)
        r = group.patch(request_body={"description": "Every Monday"})
        assert r.status_code == 201
        out["patched"] = json.loads(r.body)
        r = group.suppressions._("b@example.org").delete()
        assert r.status_code == 204
        with pytest.raises(NotFoundError):
            group.suppressions._("b@example.org").delete()
        out["after_delete"] = json.loads(group.suppressions.get().body)
        with pytest.raises(NotFoundError):
            asm._(999999).get()
        with pytest.raises(NotFoundError):
            asm._(999999).suppressions.post(request_body={"recipient_emails": ["a@example.org"]})
        assert asm._(offers["id"]).delete().status_code == 204
        with pytest.raises(NotFoundError):
            asm._(offers["id"]).delete()
        out["offers_id"] = offers["id"]
        return out

    got = await trio.to_thread.run_sync(scenario)
    weekly = got["created"]
    assert isinstance(weekly["id"], int)
    assert weekly == {
        "id": weekly["id"],
        "name": "Weekly",
        "description": "Weekly news",
        "is_default": True,
    }
    assert got["posted"] == {"recipient_emails": ["A@Example.org", "b@example.org"]}
    assert got["members"] == ["a@example.org", "b@example.org"]
    assert got["search"] == ["a@example.org"]
    by_name = {g["name"]: g for g in got["list"]}
    assert by_name["Weekly"]["is_default"] is False  # "Offers" became the default
    assert by_name["Offers"]["is_default"] is True
    assert by_name["Weekly"]["unsubscribes"] == 2
    assert got["one"]["unsubscribes"] == 2 and got["one"]["name"] == "Weekly"
    assert [g["name"] for g in got["only_offers"]] == ["Offers"]
    assert got["patched"]["description"] == "Every Monday"
    assert got["after_delete"] == ["a@example.org"]
    [resubscribed] = await _tenant_events(app, "group_resubscribe")
    assert resubscribed.recipient == "b@example.org"
    assert json.loads(resubscribed.data)["asm_group_id"] == weekly["id"]


async def test_group_suppression_drops_only_mail_of_that_group(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await verified_domain(app, DOMAIN)
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http:
        news = (await http.post("/v3/asm/groups", json={"name": "News"})).json()["id"]
        other = (await http.post("/v3/asm/groups", json={"name": "Other"})).json()["id"]
        r = await http.post(
            f"/v3/asm/groups/{news}/suppressions", json={"recipient_emails": ["dan@example.org"]}
        )
        assert r.status_code == 201

        dropped = await send(http, mail_body("Dan@example.org", asm={"group_id": news}))
        assert (await http.get(f"/v3/messages/{dropped}")).json()["status"] == "FAILED"
        [event] = await events_of(app, dropped, "dropped")
        assert event.data["reason"] == "suppressed_group_unsubscribe"

        for body in (
            mail_body("dan@example.org", asm={"group_id": other}),
            mail_body("dan@example.org"),
            mail_body(
                "dan@example.org",
                asm={"group_id": news},
                mail_settings={"bypass_unsubscribe_management": {"enable": True}},
            ),
        ):
            sent = await send(http, body)
            assert (await http.get(f"/v3/messages/{sent}")).json()["status"] == "QUEUED"

        r = await http.delete(f"/v3/asm/groups/{news}/suppressions/dan@example.org")
        assert r.status_code == 204
        sent = await send(http, mail_body("dan@example.org", asm={"group_id": news}))
        assert (await http.get(f"/v3/messages/{sent}")).json()["status"] == "QUEUED"


async def test_unsubscribe_link_of_group_mail_unsubscribes_from_the_group(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await verified_domain(app, DOMAIN)
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http:
        group = (
            await http.post("/v3/asm/groups", json={"name": "Tips", "description": "Cooking tips"})
        ).json()["id"]
        first = await send(http, mail_body("eve@example.org", asm={"group_id": group}))
        url = unsubscribe_url(await rendered(app, first))

        async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as public:
            page = await public.get(path_of(url))
            assert page.status_code == 200
            assert "Tips" in page.text and 'value="group"' in page.text
            r = await public.post(path_of(url), data={"List-Unsubscribe": "One-Click"})
            assert r.status_code == 200

        members = (await http.get(f"/v3/asm/groups/{group}/suppressions")).json()
        assert members == ["eve@example.org"]
        assert (await http.get("/v3/suppression/unsubscribes")).json() == []
        [event] = await events_of(app, first, "group_unsubscribe")
        assert event.data["asm_group_id"] == group

        dropped = await send(http, mail_body("eve@example.org", asm={"group_id": group}))
        assert (await http.get(f"/v3/messages/{dropped}")).json()["status"] == "FAILED"
        other = await send(http, mail_body("eve@example.org"))
        assert (await http.get(f"/v3/messages/{other}")).json()["status"] == "QUEUED"

        # the page's "all email" choice goes on the global list
        second = await send(http, mail_body("fay@example.org", asm={"group_id": group}))
        url = unsubscribe_url(await rendered(app, second))
        async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as public:
            r = await public.post(path_of(url), data={"scope": "all"})
            assert r.status_code == 200 and "will no longer receive" in r.text
        listed = (await http.get("/v3/suppression/unsubscribes")).json()
        assert [e["email"] for e in listed] == ["fay@example.org"]
        assert len(await events_of(app, second, "unsubscribe")) == 1
