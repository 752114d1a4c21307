"""The reputation guard on both engines: alert once, suspend, API 403 with the reason, reinstate."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import trio

from appliance.domain.reputation import Thresholds
from appliance.provisioning import create_full_access_key
from appliance.store.event_log import append_events
from appliance.store.messages import Event, event_row
from appliance.store.reputation import ALERT, RECOVERED, REINSTATED, SUSPENDED
from appliance.store.schema import events
from tests.support.admin_session import signed_in
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain

RULES = Thresholds()  # alert 5 % / 0.1 %, suspend 10 % / 0.5 %, from 100 messages


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    # A long key cache: the key authenticated before the suspension stays trusted, so the
    # send below reaches acceptance, which reads the tenant and answers with the reason.
    config = appliance_config(tmp_path / "data", database_url, api_key_cache_ttl=600)
    async with run_appliance(config) as running:
        await verified_domain(running, "rep.example.com")
        yield running


@pytest.fixture
async def client(app: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as c:
        yield c


def _mail(n: int) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": f"r{i}@example.org"}]} for i in range(n)],
        "from": {"email": "news@rep.example.com"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hi"}],
    }


async def _message_ids(app: RunningAppliance, client: httpx.AsyncClient, n: int) -> list[str]:
    r = await client.post("/v3/mail/send", headers=app.auth(), json=_mail(n))
    assert r.status_code == 202, r.text
    processed = await app.ctx.store.messages.events_for_request(r.headers["X-Message-Id"])
    ids = sorted({e.message_id for e in processed if e.message_id})
    assert len(ids) == n
    return ids


async def _outcomes(
    app: RunningAppliance, ids: list[str], event_type: str, data: dict[str, object]
) -> None:
    tenant = app.init.tenant_id
    rows = [event_row(tenant, m, event_type, "x@example.org", data, time.time()) for m in ids]
    await app.ctx.store.db.write(lambda c: append_events(c, rows))


async def _tenant_events(app: RunningAppliance, types: tuple[str, ...]) -> list[Event]:
    def fn(c: sa.Connection) -> list[Event]:
        rows = c.execute(
            sa.select(events)
            .where(events.c.tenant_id == app.init.tenant_id, events.c.event_type.in_(types))
            .order_by(events.c.seq)
        ).all()
        return [
            Event(r.seq, r.id, r.tenant_id, r.message_id, r.event_type, r.recipient,
                  r.created_at, json.loads(r.data))
            for r in rows
        ]  # fmt: skip

    return await app.ctx.store.db.read(fn)


async def test_alert_once_per_episode_then_suspend_then_reinstate(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    store = app.ctx.store
    ids = await _message_ids(app, client, 120)
    await _outcomes(app, ids[:112], "delivered", {"smtp_response": "250 ok"})
    await _outcomes(app, ids[112:], "bounce", {"bounce_type": "hard", "status": "5.1.1"})
    # 8 of 120 hard bounces = 6.7 %: an alert for the tenant and one for the domain.
    await store.reputation.check(RULES, now=time.time())
    alerts = await _tenant_events(app, (ALERT,))
    assert sorted(a.data["episode"] for a in alerts) == [
        "domain:rep.example.com:hard_bounce_rate",
        f"tenant:{app.init.tenant_id}:hard_bounce_rate",
    ]
    assert all(a.message_id is None for a in alerts)
    assert alerts[0].data["rate"] == pytest.approx(8 / 120, abs=1e-6)
    assert {a.data["window"] for a in alerts} <= {"24h", "7d"}
    tenant = await store.tenants.get(app.init.tenant_id)
    assert tenant is not None and tenant.status == "active"

    await store.reputation.check(RULES, now=time.time())
    assert len(await _tenant_events(app, (ALERT,))) == 2  # the same episode: no new alert

    # Soft bounces do not count as hard ones.
    await _outcomes(app, ids[:10], "bounce", {"bounce_type": "soft", "status": "4.2.2"})
    await store.reputation.check(RULES, now=time.time())
    tenant = await store.tenants.get(app.init.tenant_id)
    assert tenant is not None and tenant.status == "active"

    # 14 of 120 = 11.7 %: suspended, with the rate, its value and the threshold.
    await _outcomes(app, ids[10:16], "bounce", {"bounce_type": "hard", "status": "5.1.1"})
    [result] = await store.reputation.check(RULES, now=time.time())
    assert result.suspended
    tenant = await store.tenants.get(app.init.tenant_id)
    assert tenant is not None and tenant.status == "suspended"
    reason = tenant.suspended_reason or ""
    assert "hard-bounce rate" in reason and "11.67%" in reason and "10.00%" in reason
    [suspended] = await _tenant_events(app, (SUSPENDED,))
    assert suspended.data["reason"] == reason

    r = await client.post("/v3/mail/send", headers=app.auth(), json=_mail(1))
    assert r.status_code == 403
    error = r.json()["errors"][0]
    assert "suspended" in error["message"] and error["help"] == reason

    # No tenant's key may lift it, not even another tenant's full-access key: an operator
    # signed in to the admin UI (tenants.update) does.
    operator_tenant = await store.tenants.create("Operations")
    other_key = await create_full_access_key(store, operator_tenant.id, "ops")
    url = f"/api/admin/tenants/{app.init.tenant_id}/reinstate"
    r = await client.post(url, headers=app.auth(other_key))
    assert r.status_code == 403, r.text
    assert r.json()["errors"][0]["message"] == "Missing required scope: tenants.update"
    async with signed_in(app) as operator:
        r = await operator.post(url)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "active"
        r = await operator.post(url)
        assert r.status_code == 409
    [reinstated] = await _tenant_events(app, (REINSTATED,))
    assert reinstated.data["previous_reason"] == reason

    # The bad week before the lift is forgiven: the next check neither suspends nor alerts,
    # and the open episodes end.
    [after] = await store.reputation.check(RULES, now=time.time())
    assert not after.suspended and after.verdict.new_alerts == ()
    tenant = await store.tenants.get(app.init.tenant_id)
    assert tenant is not None and tenant.status == "active"
    assert len(await _tenant_events(app, (RECOVERED,))) == 2
    r = await client.post("/v3/mail/send", headers=app.auth(), json=_mail(1))
    assert r.status_code == 202, r.text


async def test_complaints_suspend_and_the_reinstate_endpoint_needs_its_scope(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    store = app.ctx.store
    ids = await _message_ids(app, client, 200)
    await _outcomes(app, ids, "delivered", {})
    await _outcomes(app, ids[:2], "spamreport", {"feedback_type": "abuse"})
    [result] = await store.reputation.check(RULES, now=time.time())
    assert result.suspended  # 2 of 200 = 1 % >= 0.5 %
    tenant = await store.tenants.get(app.init.tenant_id)
    assert tenant is not None and "complaint rate" in (tenant.suspended_reason or "")

    other = await store.tenants.create("Other")
    r = await client.post(
        "/v3/api_keys",
        headers=app.auth(await create_full_access_key(store, other.id, "full")),
        json={"name": "send only", "scopes": ["mail.send"]},
    )
    weak = r.json()["api_key"]
    url = f"/api/admin/tenants/{app.init.tenant_id}/reinstate"
    r = await client.post(url, headers=app.auth(weak))
    assert r.status_code == 403
    assert r.json()["errors"][0]["message"] == "Missing required scope: tenants.update"
    async with signed_in(app) as operator:
        r = await operator.post("/api/admin/tenants/tnt_nope/reinstate")
    assert r.status_code == 404


async def test_too_little_volume_is_not_judged(
    app: RunningAppliance, client: httpx.AsyncClient
) -> None:
    ids = await _message_ids(app, client, 50)
    await _outcomes(app, ids, "bounce", {"bounce_type": "hard", "status": "5.1.1"})
    [result] = await app.ctx.store.reputation.check(RULES, now=time.time())
    assert not result.suspended and result.verdict.new_alerts == ()


async def test_the_supervised_guard_suspends_on_its_own(tmp_path: Path, sqlite_url: str) -> None:
    config = appliance_config(tmp_path / "data", sqlite_url, reputation_check_interval=0.2)
    async with run_appliance(config, services=("http", "reputation")) as running:
        await verified_domain(running, "rep.example.com")
        async with httpx.AsyncClient(base_url=running.base_url, timeout=10) as c:
            ids = await _message_ids(running, c, 100)
        await _outcomes(running, ids[:80], "delivered", {})
        await _outcomes(running, ids[80:], "bounce", {"bounce_type": "hard", "status": "5.1.1"})
        with trio.fail_after(10):
            while True:
                tenant = await running.ctx.store.tenants.get(running.init.tenant_id)
                assert tenant is not None
                if tenant.status == "suspended":
                    break
                await trio.sleep(0.05)
        assert "hard-bounce rate" in (tenant.suspended_reason or "")
        assert "reputation" in running.ctx.health.snapshot()
