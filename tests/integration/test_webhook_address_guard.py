"""Webhook URLs to link-local and cloud metadata addresses: 400 at create and update, and
no connection at delivery; loopback stays allowed; ``webhook_allow_link_local`` lifts it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.appliance import RunningAppliance, appliance_config, run_appliance

FORBIDDEN = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.10.1:8080/hook",
    "https://[fe80::1]/hook",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://[::ffff:169.254.169.254]/",
]


@pytest.mark.parametrize("url", FORBIDDEN)
async def test_create_and_update_refuse_link_local_and_metadata_urls(
    appliance: RunningAppliance, http: httpx.AsyncClient, url: str
) -> None:
    h = appliance.auth()
    for path in ("/v3/user/webhooks", "/v3/user/webhooks/event/settings"):
        r = await http.post(path, headers=h, json={"url": url})
        assert r.status_code == 400, r.text
        error = r.json()["errors"][0]
        assert error["field"] == "url"
        assert "refused" in error["message"] and "webhook_allow_link_local" in error["help"]

    made = await http.post("/v3/user/webhooks", headers=h, json={"url": "http://127.0.0.1:9/ok"})
    assert made.status_code == 201, made.text
    hook_id = made.json()["id"]
    for path in (f"/v3/user/webhooks/{hook_id}", f"/v3/user/webhooks/event/settings/{hook_id}"):
        r = await http.patch(path, headers=h, json={"url": url})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "url", r.text
    r = await http.post("/v3/user/webhooks/event/test", headers=h, json={"url": url})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "url", r.text
    assert (await http.get(f"/v3/user/webhooks/{hook_id}", headers=h)).json()["url"].endswith("/ok")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a", "http://[::1]:9/b", "http://10.1.2.3/c"])
async def test_loopback_and_private_urls_stay_allowed(
    appliance: RunningAppliance, http: httpx.AsyncClient, url: str
) -> None:
    r = await http.post("/v3/user/webhooks", headers=appliance.auth(), json={"url": url})
    assert r.status_code == 201, r.text


async def test_the_config_key_lifts_the_rule(tmp_path: Path, sqlite_url: str) -> None:
    config = appliance_config(tmp_path / "data", sqlite_url, webhook_allow_link_local=True)
    async with run_appliance(config) as app:
        async with httpx.AsyncClient(base_url=app.base_url) as http:
            r = await http.post("/v3/user/webhooks", headers=app.auth(), json={"url": FORBIDDEN[0]})
    assert r.status_code == 201, r.text


async def test_a_stored_forbidden_url_is_not_connected_and_the_log_says_why(
    appliance: RunningAppliance, http: httpx.AsyncClient
) -> None:
    # A URL saved before the rule (or while the key was on): the dispatcher's own check.
    # fe80::1 without a zone cannot be reached from this host even if the check failed.
    hook = await appliance.ctx.store.webhooks.create(
        tenant_id=appliance.init.tenant_id, url="http://[fe80::1]:9/hook"
    )
    h = appliance.auth()
    r = await http.post(f"/v3/user/webhooks/{hook.id}/test", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["status_code"] is None
    assert "refused to connect to fe80::1: fe80::1 is a link-local address" in body["error"]
    log = (await http.get(f"/v3/user/webhooks/{hook.id}/deliveries", headers=h)).json()["result"]
    assert "link-local" in log[0]["error"]
