"""A queued message renders at delivery time to MIME that dkimpy verifies."""

from __future__ import annotations

import email
import email.policy
import time
from typing import Any

import dkim
import httpx
import pytest

from appliance.services.composer import ComposeError, Composer
from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain

FROM = "news@render.example.test"


async def _queue(app: RunningAppliance, body: dict[str, Any]) -> list[str]:
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
        r = await http.post("/v3/mail/send", json=body)
        assert r.status_code == 202, r.text
        listed = (
            await http.get("/v3/messages", params={"x_message_id": r.headers["X-Message-Id"]})
        ).json()
    return [m["msg_id"] for m in reversed(listed["messages"])]


async def test_queued_message_renders_signs_and_verifies(appliance: RunningAppliance) -> None:
    _, pair = await verified_domain(appliance, "render.example.test")
    ids = await _queue(
        appliance,
        {
            "personalizations": [
                {
                    "to": [{"email": "ana@example.org", "name": "Ana"}],
                    "cc": [{"email": "boss@example.org"}],
                    "substitutions": {"-first-": "Ana"},
                    "headers": {"X-Order": "42"},
                },
            ],
            "from": {"email": FROM, "name": "Render Test"},
            "reply_to": {"email": "help@render.example.test"},
            "subject": "Hello -first-, Grüße",
            "content": [
                {"type": "text/plain", "value": "Dear -first-"},
                {"type": "text/html", "value": "<p>Dear -first-</p>"},
            ],
            "mail_settings": {"footer": {"enable": True, "text": "-- footer", "html": "<hr>f"}},
        },
    )
    message = await appliance.ctx.store.messages.get(None, ids[0])
    assert message is not None
    composed = await Composer(appliance.ctx).compose(message, now=time.time())

    assert composed.envelope_from == f"bounces+{message.id}@bounces.render.example.test"
    dns = {f"{pair.selector}._domainkey.render.example.test.".encode(): pair.public_txt.encode()}
    assert dkim.verify(composed.data, dnsfunc=lambda name, timeout=5: dns.get(name))

    parsed = email.message_from_bytes(composed.data, policy=email.policy.default)
    assert parsed["Subject"] == "Hello Ana, Grüße"
    assert parsed["To"] == "Ana <ana@example.org>"
    assert parsed["Cc"] == "boss@example.org"
    assert parsed["X-Order"] == "42"
    assert parsed["X-Postyard-Message-Id"] == message.id
    assert parsed["Message-ID"].endswith("@render.example.test>")
    assert parsed["List-Unsubscribe"].startswith(f"<{appliance.ctx.config.base_url}/t/u/")
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n").strip() == "Dear Ana\n\n-- footer"
    assert "<p>Dear Ana</p><hr>f" in html.get_content()
    assert b"\r\n" in composed.data and b"\n" not in composed.data.replace(b"\r\n", b"")


async def test_dynamic_template_renders_from_its_active_version(
    appliance: RunningAppliance,
) -> None:
    await verified_domain(appliance, "render.example.test")
    store = appliance.ctx.store
    tenant = appliance.init.tenant_id
    async with httpx.AsyncClient(base_url=appliance.base_url, headers=appliance.auth()) as http:
        tpl = (
            await http.post("/v3/templates", json={"name": "receipt", "generation": "dynamic"})
        ).json()
        version = await http.post(
            f"/v3/templates/{tpl['id']}/versions",
            json={
                "name": "v1",
                "subject": "Order {{order.id}}",
                "active": 1,
                "html_content": "<ul>{{#each items}}<li>{{this}}</li>{{/each}}</ul>",
                "plain_content": "{{#each items}}- {{this}}\n{{/each}}",
            },
        )
        assert version.status_code == 201, version.text
    ids = await _queue(
        appliance,
        {
            "personalizations": [
                {
                    "to": [{"email": "ana@example.org"}],
                    "dynamic_template_data": {"order": {"id": 7}, "items": ["tea", "<cake>"]},
                }
            ],
            "from": {"email": FROM},
            "template_id": tpl["id"],
        },
    )
    message = await store.messages.get(tenant, ids[0])
    assert message is not None
    composed = await Composer(appliance.ctx).compose(message, now=time.time())
    parsed = email.message_from_bytes(composed.data, policy=email.policy.default)
    assert parsed["Subject"] == "Order 7"
    html = parsed.get_body(("html",))
    assert html is not None
    assert "<li>tea</li><li>&lt;cake&gt;</li>" in html.get_content()


async def test_unverified_domain_at_render_time_is_a_clear_error(
    appliance: RunningAppliance,
) -> None:
    domain, _ = await verified_domain(appliance, "render.example.test")
    ids = await _queue(
        appliance,
        {
            "personalizations": [{"to": [{"email": "a@example.org"}]}],
            "from": {"email": FROM},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "x"}],
        },
    )
    await appliance.ctx.store.domains.set_active(domain.tenant_id, domain.id, False)
    message = await appliance.ctx.store.messages.get(None, ids[0])
    assert message is not None
    with pytest.raises(ComposeError, match=r"render\.example\.test is not verified or not active"):
        await Composer(appliance.ctx).compose(message, now=time.time())


async def test_postyard_render_prints_the_signed_mime(appliance: RunningAppliance) -> None:
    import subprocess
    import sys

    import trio

    await verified_domain(appliance, "render.example.test")
    ids = await _queue(
        appliance,
        {
            "personalizations": [{"to": [{"email": "a@example.org"}]}],
            "from": {"email": FROM},
            "subject": "Rendered by the CLI",
            "content": [{"type": "text/plain", "value": "x"}],
        },
    )
    config = appliance.ctx.config
    args = [
        sys.executable,
        "-m",
        "appliance.cli",
        "render",
        ids[0],
        "--data-dir",
        str(config.data_dir),
        "--database-url",
        config.database_url,
    ]
    out = await trio.to_thread.run_sync(
        lambda: subprocess.run(args, capture_output=True, timeout=60, env={"PATH": "/usr/bin"})
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"DKIM-Signature: ")
    assert b"Subject: Rendered by the CLI" in out.stdout
    assert f"bounces+{ids[0]}@bounces.render.example.test".encode() in out.stderr

    missing = await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [*args[:4], "msg_nope", *args[5:]],
            capture_output=True,
            timeout=60,
            env={"PATH": "/usr/bin"},
        )
    )
    assert missing.returncode == 1
    assert b"no message msg_nope" in missing.stderr


async def test_render_failure_makes_the_message_failed_with_the_reason(
    appliance: RunningAppliance,
) -> None:
    """Seed 000: a message that cannot render must never sit in PROCESSING."""
    domain, _ = await verified_domain(appliance, "render.example.test")
    ids = await _queue(
        appliance,
        {
            "personalizations": [{"to": [{"email": "a@example.org"}]}],
            "from": {"email": FROM},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "x"}],
        },
    )
    store = appliance.ctx.store
    await store.domains.set_active(domain.tenant_id, domain.id, False)
    message = await store.messages.get(None, ids[0])
    assert message is not None
    assert await Composer(appliance.ctx).compose_or_fail(message, now=time.time()) is None
    async with httpx.AsyncClient(base_url=appliance.base_url, headers=appliance.auth()) as http:
        detail = (await http.get(f"/v3/messages/{ids[0]}")).json()
    assert detail["status"] == "FAILED"
    assert "render.example.test is not verified or not active" in detail["error_message"]
    assert [e["event_type"] for e in detail["events"]] == ["processed", "dropped"]
    assert detail["events"][1]["reason"] == "render_failed"
