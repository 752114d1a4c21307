"""Admin pages for suppressions, templates, IP pools/relays/warm-up and inbound reports, over
real HTTP: a person signs in (CSRF cookie and field), reads the pages, changes things through
the JSON API with the session's CSRF token; a role without the permission gets 403."""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from appliance.domain.inbound_outcome import MatchedBy, MatchKey
from appliance.domain.warmup import utc_day
from appliance.store.templates import Generation, VersionContent
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.inbound_reports import record_report
from tests.support.sending import verified_domain

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    config = appliance_config(
        tmp_path / "data", database_url, hostname="postyard.test", spf_include="_spf.postyard.test"
    )
    async with run_appliance(config) as running:
        yield running


async def sign_in(app: RunningAppliance, email: str, password: str) -> httpx.AsyncClient:
    """An HTTP client with a signed-in admin session (and ``csrf`` for API writes)."""
    client = httpx.AsyncClient(base_url=app.base_url, timeout=10)
    form = await client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    r = await client.post(
        "/admin/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": token.group(1),
            "next": "/admin/",
        },
    )
    assert r.status_code == 302 and r.headers["location"] == "/admin/", r.text
    home = await client.get("/admin/")
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text)
    assert meta is not None
    client.headers["X-CSRF-Token"] = meta.group(1)
    return client


@pytest.fixture
async def owner(app: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in(app, app.init.admin_email, app.init.admin_password)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def sender(app: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    """Someone whose custom role may send and read statistics, nothing of these pages."""
    store = app.ctx.store
    await store.roles.create("sender", "sends mail", frozenset({"mail.send", "stats.read"}))
    await store.users.create(
        email="sender@example.test",
        role="sender",
        password_hash=PasswordHasher().hash(PASSWORD),
        tenant_id=app.init.tenant_id,
    )
    client = await sign_in(app, "sender@example.test", PASSWORD)
    try:
        yield client
    finally:
        await client.aclose()


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


def emails(page: httpx.Response) -> list[str]:
    """The addresses in a suppression table's rows."""
    return [html.unescape(e) for e in re.findall(r'<tr data-email="([^"]*)"', page.text)]


# ---------------------------------------------------------------- permissions


PAGES = (
    ("/admin/suppressions", "suppression.read"),
    ("/admin/suppressions/export.csv?list=bounces", "suppression.read"),
    ("/admin/templates", "templates.read"),
    ("/admin/delivery", "ip_pools.read"),
    ("/admin/inbound", "relays.read"),
)


async def test_each_page_answers_the_owner_and_refuses_a_role_without_its_permission(
    owner: httpx.AsyncClient, sender: httpx.AsyncClient, app: RunningAppliance
) -> None:
    for path, permission in PAGES:
        ok = await owner.get(path)
        assert ok.status_code == 200, (path, ok.text[:300])
        refused = await sender.get(path)
        assert refused.status_code == 403, path
        assert permission in refused.text
    # The navigation shows the sender none of them, and signed-out visitors go to sign-in.
    home = await sender.get("/admin/")
    for path, _ in PAGES:
        assert f'href="{path}"' not in home.text
    async with httpx.AsyncClient(base_url=app.base_url) as anonymous:
        r = await anonymous.get("/admin/suppressions")
        assert r.status_code == 302 and r.headers["location"].startswith("/admin/login?next=")


# ---------------------------------------------------------------- suppressions


async def test_suppressions_search_page_remove_add_and_export(
    owner: httpx.AsyncClient, app: RunningAppliance
) -> None:
    store, tenant = app.ctx.store, app.init.tenant_id
    await store.suppressions.add(
        tenant, "bounces", "jane@example.com", reason="550 5.1.1 user unknown", status="5.1.1"
    )
    await store.suppressions.add(
        tenant, "bounces", "=cmd@example.net", reason="-attack", status="5.0.0"
    )
    for i in range(55):
        await store.suppressions.add(tenant, "bounces", f"bulk{i:02}@example.org", reason="x")

    first = await owner.get("/admin/suppressions", params={"list": "bounces"})
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    assert first.text.count('data-api="DELETE /v3/suppression/bounces/') == 50
    second = await owner.get("/admin/suppressions", params={"list": "bounces", "offset": "50"})
    assert second.text.count("<tr data-email=") == 7 and 'rel="prev"' in second.text
    assert "550 5.1.1 user unknown" in second.text  # the oldest entries are on the last page

    prefix = await owner.get("/admin/suppressions", params={"list": "bounces", "email": "jan"})
    assert emails(prefix) == ["jane@example.com"]
    nothing = await owner.get("/admin/suppressions", params={"list": "bounces", "email": "example"})
    assert emails(nothing) == []  # a prefix: "example" starts no address
    anywhere = await owner.get(
        "/admin/suppressions",
        params={"list": "bounces", "email": "example.net", "match": "anywhere"},
    )
    assert emails(anywhere) == ["=cmd@example.net"]

    # Remove through the API the page's button calls, with the session and its CSRF token.
    removed = await owner.delete("/v3/suppression/bounces/jane%40example.com")
    assert removed.status_code == 204
    after = await owner.get("/admin/suppressions", params={"list": "bounces", "email": "jane"})
    assert emails(after) == []
    no_csrf = await owner.delete(
        "/v3/suppression/bounces/bulk00@example.org", headers={"X-CSRF-Token": "wrong"}
    )
    assert no_csrf.status_code == 403

    export = await owner.get("/admin/suppressions/export.csv", params={"list": "bounces"})
    assert export.headers["content-type"].startswith("text/csv")
    assert (
        export.headers["content-disposition"] == 'attachment; filename="suppressions-bounces.csv"'
    )
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == ["email", "created", "reason", "status"]
    assert len(rows) == 1 + 56  # 57 added, one removed: more than one page of the table
    by_email = {r[0]: r for r in rows[1:]}
    assert by_email["'=cmd@example.net"][2:] == ["'-attack", "5.0.0"]  # never a formula
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[1][1])
    filtered = await owner.get(
        "/admin/suppressions/export.csv", params={"list": "bounces", "email": "bulk5"}
    )
    assert sorted(r[0] for r in list(csv.reader(io.StringIO(filtered.text)))[1:]) == [
        f"bulk{i}@example.org" for i in range(50, 55)
    ]

    # Global unsubscribes: the add form posts to the ASM endpoint.
    page = await owner.get("/admin/suppressions", params={"list": "unsubscribes"})
    assert 'data-api="POST /v3/asm/suppressions/global"' in page.text
    added = await owner.post(
        "/v3/asm/suppressions/global", json={"recipient_emails": ["Opt.Out@Example.com"]}
    )
    assert added.status_code == 201, added.text
    listed = await owner.get("/admin/suppressions", params={"list": "unsubscribes"})
    assert emails(listed) == ["opt.out@example.com"]
    assert (await owner.get("/admin/suppressions", params={"list": "nope"})).status_code == 404


async def test_group_suppressions_are_listed_searched_and_exported(
    owner: httpx.AsyncClient, app: RunningAppliance
) -> None:
    store, tenant = app.ctx.store, app.init.tenant_id
    group = await store.asm_groups.create(
        tenant, name="Newsletter", description="", is_default=False
    )
    await store.asm_groups.add_suppressions(
        tenant, group.id, ["ann@example.com", "bob@example.com"]
    )
    page = await owner.get("/admin/suppressions", params={"list": "bounces"})
    assert f'href="?list=group:{group.id}"' in page.text and "Newsletter" in page.text
    listed = await owner.get(
        "/admin/suppressions", params={"list": f"group:{group.id}", "email": "bo"}
    )
    assert emails(listed) == ["bob@example.com"]
    assert f'data-api="POST /v3/asm/groups/{group.id}/suppressions"' in listed.text
    assert f"DELETE /v3/asm/groups/{group.id}/suppressions/bob%40example.com" in listed.text
    export = await owner.get("/admin/suppressions/export.csv", params={"list": f"group:{group.id}"})
    assert sorted(r[0] for r in list(csv.reader(io.StringIO(export.text)))[1:]) == [
        "ann@example.com",
        "bob@example.com",
    ]
    missing = await owner.get("/admin/suppressions", params={"list": "group:999999"})
    assert missing.status_code == 404


# ---------------------------------------------------------------- templates


async def test_templates_list_detail_and_preview(
    owner: httpx.AsyncClient, app: RunningAppliance
) -> None:
    store, tenant = app.ctx.store, app.init.tenant_id
    dynamic = await store.templates.create(tenant, "Welcome", Generation.DYNAMIC)
    version = await store.templates.add_version(
        tenant,
        dynamic.id,
        VersionContent(
            name="v1",
            subject="Hi {{name}}",
            html_content="<p>Hello <b>{{name}}</b></p>",
            test_data='{"name": "Ann"}',
        ),
        active=True,
    )
    assert version is not None
    legacy = await store.templates.create(tenant, "Old receipt", Generation.LEGACY)

    listing = await owner.get("/admin/templates")
    assert "Welcome" in listing.text and "Old receipt" in listing.text
    only_legacy = await owner.get("/admin/templates", params={"generation": "legacy"})
    assert "Old receipt" in only_legacy.text and "Welcome" not in only_legacy.text

    detail = await owner.get(f"/admin/templates/{dynamic.id}")
    assert detail.status_code == 200
    body = detail.text
    assert f'data-api="POST /v3/templates/{dynamic.id}/versions/{version.id}/preview"' in body
    assert f'data-api="PATCH /v3/templates/{dynamic.id}/versions/{version.id}"' in body
    assert '"name": "Ann"' in html.unescape(body)  # the preview starts from the test data
    assert 'sandbox=""' in body
    assert "&lt;p&gt;Hello &lt;b&gt;{{name}}&lt;/b&gt;&lt;/p&gt;" in body  # escaped in the editor

    preview = await owner.post(
        f"/v3/templates/{dynamic.id}/versions/{version.id}/preview",
        json={"dynamic_template_data": {"name": "Zoë"}},
    )
    assert preview.json()["subject"] == "Hi Zoë"
    new = await owner.get(f"/admin/templates/{legacy.id}")
    assert f'data-api="POST /v3/templates/{legacy.id}/versions"' in new.text
    assert (await owner.get("/admin/templates/tpl_nope")).status_code == 404


# ---------------------------------------------------------------- pools, relays, warm-up


async def test_delivery_page_shows_pools_relays_and_warmup_state(
    owner: httpx.AsyncClient, app: RunningAppliance
) -> None:
    store = app.ctx.store
    relay = await store.relays.create(
        name="smarthost",
        host="relay.example.test",
        port=587,
        tls_mode="starttls",
        verify_tls=True,
        username="postyard",
        password=app.ctx.secrets.encrypt(b"s3cret-pass"),
        auth_mechanism=None,
    )
    now = time.time()
    await store.ip_pools.create(
        name="warm", addresses=("127.0.0.1",), relay_id=relay.id, warmup_started_at=now - 2 * 86400
    )
    await store.ip_pools.create(name="cold", addresses=(), relay_id=None, warmup_started_at=None)
    await store.send_counters.add({"pool:warm": 57}, utc_day(now))

    page = await owner.get("/admin/delivery")
    text = text_of(page)
    assert "day 3 of 14" in text and "57 of 200 sent today" in text
    assert "smarthost" in text and "relay.example.test:587" in text and "postyard" in text
    assert "s3cret" not in page.text and "direct to MX" in text
    assert f'data-body=\'{{"relay_id": "{relay.id}"}}\'' in page.text  # the test button
    assert 'data-api="POST /api/admin/relays/test"' in page.text

    # A domain warming up shows its state too.
    created = await owner.post("/api/admin/domains", json={"domain": "warm.example.test"})
    assert created.status_code == 201, created.text
    turned = await owner.patch(f"/api/admin/domains/{created.json()['id']}", json={"warmup": True})
    assert turned.status_code == 200, turned.text
    await store.send_counters.add({"domain:warm.example.test": 3}, utc_day(time.time()))
    again = text_of(await owner.get("/admin/delivery"))
    assert "warm.example.test" in again and "3 of 50 sent today" in again


# ---------------------------------------------------------------- inbound reports


async def test_inbound_reports_list_and_detail(
    owner: httpx.AsyncClient, app: RunningAppliance
) -> None:
    recorded = await record_report(app, envelope_to="bounces@bounces.example.test", tenant_id=None)
    report_id = recorded.report.id
    listing = await owner.get("/admin/inbound")
    text = text_of(listing)
    assert f'href="/admin/inbound/{report_id}"' in listing.text
    assert "gone@example.org" in text and "5.1.1" in text and "mx1.example.org" in text
    assert "unmatched" in text
    hard = await owner.get("/admin/inbound", params={"kind": "complaint"})
    assert report_id not in hard.text
    detail = await owner.get(f"/admin/inbound/{report_id}")
    assert detail.status_code == 200
    assert "Reporting-MTA: dns; mx1.example.org" in detail.text  # the raw message
    assert "User unknown" in text_of(detail)
    assert (await owner.get("/admin/inbound/rpt_missing")).status_code == 404


async def test_a_matched_report_links_to_its_message(
    owner: httpx.AsyncClient, app: RunningAppliance
) -> None:
    await verified_domain(app, "shop.example.test")
    sent = await owner.post(
        "/v3/mail/send",
        json={
            "personalizations": [{"to": [{"email": "gone@example.org"}]}],
            "from": {"email": "news@shop.example.test"},
            "subject": "Hello",
            "content": [{"type": "text/plain", "value": "Hi"}],
        },
    )
    assert sent.status_code == 202, sent.text
    listed = await owner.get("/v3/messages", params={"x_message_id": sent.headers["X-Message-Id"]})
    message_id = listed.json()["messages"][0]["msg_id"]
    recorded = await record_report(
        app,
        envelope_to=f"bounces+{message_id}@bounces.shop.example.test",
        tenant_id=app.init.tenant_id,
        keys=(MatchKey(message_id, MatchedBy.VERP),),
    )
    assert recorded.report.matched
    link = f'href="/admin/messages/{message_id}"'
    assert link in (await owner.get("/admin/inbound", params={"matched": "true"})).text
    assert recorded.report.id not in (await owner.get("/admin/inbound?matched=false")).text
    detail = await owner.get(f"/admin/inbound/{recorded.report.id}")
    assert link in detail.text and "Hard bounce for gone@example.org" in text_of(detail)


async def test_a_viewer_sees_no_buttons_and_the_api_refuses_them_anyway(
    app: RunningAppliance,
) -> None:
    store, tenant = app.ctx.store, app.init.tenant_id
    await store.users.create(
        email="viewer@example.test",
        role="viewer",
        password_hash=PasswordHasher().hash(PASSWORD),
        tenant_id=tenant,
    )
    await store.suppressions.add(tenant, "bounces", "jane@example.com", reason="x", status="5.1.1")
    await store.suppressions.add(tenant, "unsubscribes", "out@example.com")
    await store.relays.create(
        name="smarthost",
        host="relay.example.test",
        port=25,
        tls_mode="none",
        verify_tls=True,
        username=None,
        password=None,
        auth_mechanism=None,
    )
    await store.ip_pools.create(name="main", addresses=(), relay_id=None, warmup_started_at=None)
    template = await store.templates.create(tenant, "Welcome", Generation.DYNAMIC)
    await store.templates.add_version(tenant, template.id, VersionContent(name="v1"), active=True)
    viewer = await sign_in(app, "viewer@example.test", PASSWORD)
    try:
        for path in (
            "/admin/suppressions?list=bounces",
            "/admin/suppressions?list=unsubscribes",
            "/admin/delivery",
            "/admin/templates",
            f"/admin/templates/{template.id}",
        ):
            page = await viewer.get(path)
            assert page.status_code == 200, path
            assert "data-api=" not in page.text.replace(
                f'data-api="POST /v3/templates/{template.id}/versions/', ""
            ), path  # the preview (a read) is the only call left
            assert "data-open=" not in page.text, path
        assert 'id="export"' in (await viewer.get("/admin/suppressions")).text
        refused = await viewer.delete("/v3/suppression/bounces/jane@example.com")
        assert refused.status_code == 403 and "suppression.bounces.delete" in refused.text
        assert (await viewer.post("/api/admin/relays/test", json={})).status_code == 403
    finally:
        await viewer.aclose()
