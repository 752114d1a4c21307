"""The statistics endpoints, driven with the official ``sendgrid`` client, on both engines.

Events come from the real paths: ``/v3/mail/send`` (processed, dropped by a
suppression) and the delivery queue's ``record`` with outcomes from
``domain.delivery_outcome`` (delivered, bounce, deferred).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from typing import Any

import httpx
import pytest
import trio
from python_http_client.exceptions import BadRequestsError, ForbiddenError
from sendgrid import SendGridAPIClient

from appliance.domain.api_key_format import ApiKeySecret
from appliance.domain.delivery_outcome import Attempt, Route, delivered, refused
from appliance.domain.message_status import MessageStatus
from appliance.domain.retry_schedule import RetryPolicy
from appliance.domain.stats_metrics import METRICS, zero_metrics
from appliance.protocols.smtp_reply import Reply
from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain
from tests.support.suppressions import client, seed

FROM = "news@mail.example.test"
MX = Route(mx_host="mx.example.org", ip=None, tls=True, relay=None)
REPLIES = {
    "ok@example.org": Reply.build(250, "2.0.0", "OK"),
    "hard@example.org": Reply.build(550, "5.1.1", "User unknown"),
    "later@example.org": Reply.build(451, "4.3.0", "Try again later"),
    "plain@example.org": Reply.build(250, "2.0.0", "OK"),
}


def metrics(**values: int) -> dict[str, int]:
    return {**zero_metrics(), **values}


def body(recipients: list[str], categories: list[str] | None) -> dict[str, Any]:
    mail: dict[str, Any] = {
        "personalizations": [{"to": [{"email": r}]} for r in recipients],
        "from": {"email": FROM},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
    }
    if categories:
        mail["categories"] = categories
    return mail


async def deliver_all(app: RunningAppliance) -> None:
    """One delivery pass as the engine would record it: claim, send, record outcomes."""
    store = app.ctx.store
    now = time.time()
    claimed = await store.queue.claim("node", limit=100, lease_seconds=60, now=now)
    await store.queue.advance("node", [m.id for m in claimed], MessageStatus.SENDING, now=now)
    outcomes = []
    for m in claimed:
        attempt = Attempt(m.id, m.tenant_id, m.recipient, m.request_id, m.attempts)
        reply = REPLIES[m.recipient]
        if reply.code < 300:
            outcomes.append(delivered(attempt, reply, MX, now=now))
        else:
            outcomes.append(
                refused(attempt, reply, MX, policy=RetryPolicy(), rng=random.Random(0), now=now)
            )
    assert len(await store.queue.record(outcomes, now=now)) == len(REPLIES)


@pytest.fixture
async def sent(appliance_any_db: RunningAppliance) -> RunningAppliance:
    """Tenant mail: 6 requests (one dropped as a bounced address, one as unsubscribed),
    four of them in category "welcome", then delivery: 2 delivered, 1 bounce, 1 deferred."""
    app = appliance_any_db
    await verified_domain(app, "mail.example.test")
    await seed(app, "bounces", "gone@example.org", 10, reason="550 5.1.1", status="5.1.1")
    await seed(app, "unsubscribes", "left@example.org", 10)

    def send() -> None:
        sg = client(app)
        welcome = ["ok@example.org", "hard@example.org", "later@example.org", "gone@example.org"]
        for mail in (
            body(welcome, ["welcome", "onboarding"]),
            body(["plain@example.org", "left@example.org"], None),
        ):
            assert sg.client.mail.send.post(request_body=mail).status_code == 202

    await trio.to_thread.run_sync(send)
    await deliver_all(app)
    return app


EXPECTED_ALL = metrics(
    requests=6,
    processed=4,
    bounce_drops=1,
    unsubscribe_drops=1,
    delivered=2,
    bounces=1,
    deferred=1,
)
EXPECTED_WELCOME = metrics(
    requests=4, processed=3, bounce_drops=1, delivered=1, bounces=1, deferred=1
)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def around_today() -> dict[str, str]:
    """Yesterday to tomorrow, so a test running over midnight UTC still sees its events."""
    day = dt.timedelta(days=1)
    return {"start_date": str(today() - day), "end_date": str(today() + day)}


def total(rows: list[dict[str, Any]], index: int = 0) -> dict[str, int]:
    out = zero_metrics()
    for row in rows:
        for name, value in row["stats"][index]["metrics"].items():
            out[name] += value
    return out


async def test_global_stats_by_day_with_the_sendgrid_client(sent: RunningAppliance) -> None:
    def fetch() -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        sg = client(sent)
        days = json.loads(sg.client.stats.get(query_params=around_today()).body)
        summed = json.loads(sg.client.stats.sum.get(query_params=around_today()).body)
        paged = json.loads(
            sg.client.stats.get(query_params={**around_today(), "limit": 1, "offset": 1}).body
        )
        return days, summed, paged

    days, summed, paged = await trio.to_thread.run_sync(fetch)
    start = today() - dt.timedelta(days=1)
    assert [d["date"] for d in days] == [str(start + dt.timedelta(days=i)) for i in range(3)]
    for d in days:
        assert list(d["stats"][0]["metrics"]) == list(METRICS)  # all 16, zeros included
    assert total(days) == EXPECTED_ALL
    assert summed == {"date": str(start), "stats": [{"metrics": EXPECTED_ALL}]}
    assert paged == [days[1]]


async def test_weeks_and_months_are_labelled_and_summed(sent: RunningAppliance) -> None:
    start = today() - dt.timedelta(days=45)

    def fetch(by: str) -> list[dict[str, Any]]:
        query = {"start_date": str(start), "aggregated_by": by}
        return json.loads(client(sent).client.stats.get(query_params=query).body)

    weeks = await trio.to_thread.run_sync(fetch, "week")
    months = await trio.to_thread.run_sync(fetch, "month")

    monday = today() - dt.timedelta(days=today().weekday())
    assert weeks[0]["date"] == str(start)
    assert weeks[-1]["date"] == str(monday)
    assert all(dt.date.fromisoformat(w["date"]).weekday() == 0 for w in weeks[1:])
    assert weeks[-1]["stats"][0]["metrics"] == EXPECTED_ALL
    assert total(weeks[:-1]) == zero_metrics()
    assert months[0]["date"] == str(start)
    assert months[-1]["date"] == str(today().replace(day=1))
    assert months[-1]["stats"][0]["metrics"] == EXPECTED_ALL
    # One bucket per calendar month the 45 days touch (two or three, by today's date).
    spanned = (today().year - start.year) * 12 + today().month - start.month + 1
    assert len(months) == spanned


async def test_category_stats_and_sums(sent: RunningAppliance) -> None:
    def fetch() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        sg = client(sent)
        per_day = json.loads(
            sg.client.categories.stats.get(
                query_params={**around_today(), "categories": ["welcome", "never-used"]}
            ).body
        )
        sums = json.loads(sg.client.categories.stats.sums.get(query_params=around_today()).body)
        by_bounces = json.loads(
            sg.client.categories.stats.sums.get(
                query_params={
                    **around_today(),
                    "sort_by_metric": "bounces",
                    "sort_by_direction": "asc",
                    "limit": 1,
                    "offset": 1,
                }
            ).body
        )
        return per_day, sums, by_bounces

    per_day, sums, by_bounces = await trio.to_thread.run_sync(fetch)
    assert len(per_day) == 3
    for row in per_day:
        assert [(s["name"], s["type"]) for s in row["stats"]] == [
            ("welcome", "category"),
            ("never-used", "category"),
        ]
    assert total(per_day, 0) == EXPECTED_WELCOME
    assert total(per_day, 1) == zero_metrics()
    # Messages count under their first category (the one stored with the message).
    assert sums == {
        "date": around_today()["start_date"],
        "stats": [{"metrics": EXPECTED_WELCOME, "name": "welcome", "type": "category"}],
    }
    assert by_bounces["stats"] == []  # one category: offset 1 is past the end


async def test_rebuild_gives_the_live_numbers_and_needs_stats_export(
    sent: RunningAppliance,
) -> None:
    def scenario() -> tuple[Any, ...]:
        sg = client(sent)
        live = json.loads(sg.client.stats.get(query_params=around_today()).body)
        live_cat = json.loads(
            sg.client.categories.stats.get(
                query_params={**around_today(), "categories": "welcome"}
            ).body
        )
        rebuilt = sg.client.stats.rebuild.post()
        after = json.loads(sg.client.stats.get(query_params=around_today()).body)
        after_cat = json.loads(
            sg.client.categories.stats.get(
                query_params={**around_today(), "categories": "welcome"}
            ).body
        )
        narrow = json.loads(
            sg.client.api_keys.post(request_body={"name": "viewer", "scopes": ["stats.read"]}).body
        )
        viewer = SendGridAPIClient(api_key=narrow["api_key"], host=sent.base_url)
        assert viewer.client.stats.get(query_params=around_today()).status_code == 200
        with pytest.raises(ForbiddenError) as forbidden:
            viewer.client.stats.rebuild.post()
        return live, live_cat, rebuilt, after, after_cat, forbidden.value

    live, live_cat, rebuilt, after, after_cat, forbidden = await trio.to_thread.run_sync(scenario)
    assert rebuilt.status_code == 200
    # 6 accepted (processed or dropped) + 4 delivery outcomes
    assert json.loads(rebuilt.body) == {"events_replayed": 10, "rows": 2}
    assert (after, after_cat) == (live, live_cat)
    assert total(after) == EXPECTED_ALL
    assert forbidden.to_dict["errors"][0]["message"] == "Missing required scope: stats.export"


async def test_another_tenant_sees_only_its_own_numbers(sent: RunningAppliance) -> None:
    store = sent.ctx.store
    other = await store.tenants.create("Other")
    secret = ApiKeySecret.generate()
    await store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=other.id,
        name="k",
        scopes=frozenset({"stats.read", "categories.stats.read", "stats.export"}),
        secret_hash=secret.secret_hash(),
    )

    def fetch() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        sg = SendGridAPIClient(api_key=secret.token, host=sent.base_url)
        sg.client.stats.rebuild.post()  # rebuilding one tenant leaves the others alone
        theirs = json.loads(sg.client.stats.get(query_params=around_today()).body)
        cat = json.loads(
            sg.client.categories.stats.get(
                query_params={**around_today(), "categories": "welcome"}
            ).body
        )
        ours = json.loads(client(sent).client.stats.get(query_params=around_today()).body)
        return theirs, cat, ours

    theirs, cat, ours = await trio.to_thread.run_sync(fetch)
    assert total(theirs) == zero_metrics()
    assert total(cat) == zero_metrics()
    assert total(ours) == EXPECTED_ALL


@pytest.mark.parametrize(
    ("path", "query", "errors"),
    [
        ("stats", {}, [("start_date", "start_date is required")]),
        ("stats", {"start_date": "03/01/2026"}, [("start_date", "format YYYY-MM-DD")]),
        (
            "stats",
            {"start_date": "2026-03-05", "end_date": "2026-03-01", "aggregated_by": "year"},
            [
                ("end_date", "end_date (2026-03-01) is before start_date (2026-03-05)"),
                ("aggregated_by", "aggregated_by must be day, week or month; got 'year'"),
            ],
        ),
        ("stats", {"start_date": "2026-03-01", "limit": "0"}, [("limit", "1 or more")]),
        ("categories", {"start_date": "2026-03-01"}, [("categories", "categories is required")]),
        (
            "categories",
            {"start_date": "2026-03-01", "categories": [f"c{i}" for i in range(11)]},
            [("categories", "at most 10 categories")],
        ),
        (
            "sums",
            {"start_date": "2026-03-01", "sort_by_metric": "sent", "sort_by_direction": "up"},
            [
                ("sort_by_metric", "sort_by_metric must be one of blocks, bounce_drops"),
                ("sort_by_direction", "must be asc or desc; got 'up'"),
            ],
        ),
    ],
)
async def test_bad_queries_are_answered_400_with_every_problem(
    appliance: RunningAppliance,
    path: str,
    query: dict[str, Any],
    errors: list[tuple[str, str]],
) -> None:
    def fetch() -> BadRequestsError:
        sg = client(appliance).client
        endpoint = {
            "stats": sg.stats,
            "categories": sg.categories.stats,
            "sums": sg.categories.stats.sums,
        }[path]
        with pytest.raises(BadRequestsError) as err:
            endpoint.get(query_params=query)
        return err.value

    error = await trio.to_thread.run_sync(fetch)
    found = error.to_dict["errors"]
    assert [e["field"] for e in found] == [field for field, _ in errors]
    for item, (_, words) in zip(found, errors, strict=True):
        assert words in item["message"]
        assert item["help"].startswith("https://docs.sendgrid.com/")


async def test_stats_routes_are_in_the_openapi_document(appliance: RunningAppliance) -> None:
    async with httpx.AsyncClient(base_url=appliance.base_url, timeout=10) as h:
        paths = (await h.get("/openapi.json")).json()["paths"]
    assert {"get"} <= set(paths["/v3/stats"])
    assert {"get"} <= set(paths["/v3/stats/sum"])
    assert {"get"} <= set(paths["/v3/categories/stats"])
    assert {"get"} <= set(paths["/v3/categories/stats/sums"])
    assert {"post"} <= set(paths["/v3/stats/rebuild"])
