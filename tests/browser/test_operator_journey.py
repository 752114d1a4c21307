"""The operator's day in the browser, end to end on loopback (issue 7's done criteria).

Sign in, create an API key (its secret shown once), send with it through the real
``sendgrid`` client, watch the message in the live feed, follow it to DELIVERED on
its page at the scripted MX, then bring back a webhook the dispatcher disabled.
"""

from __future__ import annotations

import time
from typing import Any

import trio
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from tests.browser.conftest import Ui
from tests.support.sending import verified_domain

SENDER = "shop.test"


def _send_with_sendgrid(base_url: str, key: str, to: str) -> str:
    client = SendGridAPIClient(api_key=key, host=base_url)
    mail = Mail(
        from_email=f"app@{SENDER}",
        to_emails=to,
        subject="Order confirmed",
        plain_text_content="Your order ships tomorrow.",
    )
    response = client.send(mail)
    assert response.status_code == 202, response.body
    return str(response.headers["X-Message-Id"])


async def test_key_send_live_feed_delivered_and_webhook_reenabled(ui: Ui) -> None:
    await verified_domain(ui.app, SENDER)
    await ui.sign_in()
    await ui.screenshot("dashboard")

    def create_key(page: Any) -> str:
        page.goto("/admin/api-keys")
        page.get_by_label("Name").fill("shop backend")
        page.get_by_label("Mail send only (for applications)").check()
        page.get_by_role("button", name="Create key").click()
        secret = page.locator("#new-key")
        secret.wait_for()
        token = secret.inner_text().strip()
        assert token.startswith("SG.")
        page.get_by_text("it is shown only this once").wait_for()
        return str(token)

    key = await ui.do(create_key)
    await ui.screenshot("key-created")
    keys = await ui.app.ctx.store.api_keys.for_tenant(ui.app.init.tenant_id)
    assert {k.name: sorted(k.scopes) for k in keys}["shop backend"] == ["mail.send"]

    feed = await ui.new_page()

    def open_feed(page: Any) -> None:
        page.goto("/admin/live")
        page.locator("#live-status[data-state=open]").wait_for()

    await ui.thread.run(open_feed, feed)
    x_message_id = await trio.to_thread.run_sync(
        _send_with_sendgrid, ui.base_url, key, "buyer@example.test"
    )

    def watch_feed(page: Any) -> str:
        row = page.locator("#live-events tr[data-event=delivered]")
        row.wait_for(timeout=20_000)
        assert "buyer@example.test" in row.inner_text()
        processed = page.locator("#live-events tr[data-event=processed]")
        assert processed.count() == 1
        return str(row.locator("a").inner_text())

    message_id = await ui.thread.run(watch_feed, feed)
    await ui.screenshot("live-feed", feed)
    assert message_id.startswith("msg_")
    received = await ui.mx.wait_received(1, timeout=10)
    assert received[0]["rcpt_tos"] == ["buyer@example.test"]

    def message_page(page: Any) -> None:
        page.goto(f"/admin/messages?x_message_id={x_message_id}")
        page.get_by_role("link", name="UTC").first.click()
        page.locator("#message-status", has_text="DELIVERED").wait_for()
        assert "250" in page.locator("#last-reply").inner_text()
        timeline = page.locator("#timeline").inner_text()
        assert "processed" in timeline and "delivered" in timeline
        page.get_by_text("Show the MIME as it is sent").click()
        page.locator("#mime", has_text="DKIM-Signature:").wait_for()

    await ui.do(message_page)
    await ui.screenshot("message-delivered")

    # A webhook the dispatcher gave up on: the operator turns it back on from its page.
    store = ui.app.ctx.store.webhooks
    hook = await store.create(
        tenant_id=ui.app.init.tenant_id,
        url="http://127.0.0.1:9/unreachable",
        friendly_name="orders hook",
        enabled=True,
        event_types=(),
        format="postyard",
        signing_keys=None,
    )
    await store.disable(hook.id, reason="failing for 24 h", now=time.time())

    def reenable(page: Any) -> None:
        page.goto("/admin/webhooks")
        page.get_by_role("link", name="orders hook").click()
        page.locator("#disabled-banner").wait_for()
        page.get_by_role("button", name="Enable again").click()
        page.locator("#hook-state", has_text="active").wait_for()

    await ui.do(reenable)
    await ui.screenshot("webhook-reenabled")
    again = await store.get(ui.app.init.tenant_id, hook.id)
    assert again is not None and again.enabled and again.disabled_at is None
    assert not ui.console_errors, ui.console_errors
