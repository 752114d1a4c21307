"""Domains in the browser: add one, publish its records in the test DNS, verify per record."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import Ui
from tests.support.dns_server import txt


async def _publish(ui: Ui, domain_id: str) -> None:
    async with httpx.AsyncClient(base_url=ui.base_url) as http:
        response = await http.get(
            f"/api/admin/domains/{domain_id}/dns-records", headers=ui.app.auth()
        )
    for r in response.json()["records"]:
        if r["type"] == "MX":
            ui.dns.zones.set(r["host"], "MX", f"{r['priority']} {r['value']}.")
        else:
            ui.dns.zones.set(r["host"], "TXT", txt(*r.get("strings", [r["value"]])))


async def test_add_a_domain_and_verify_it_record_by_record(ui: Ui) -> None:
    await ui.sign_in()

    def add(page: Any) -> str:
        page.goto("/admin/domains")
        page.get_by_label("Domain", exact=True).fill("shop.test")
        page.get_by_role("button", name="Add domain").click()
        page.wait_for_url("**/admin/domains/dom_*")
        page.get_by_role("heading", name="shop.test").wait_for()
        assert page.get_by_text("not verified").first.is_visible()
        return str(page.url.rsplit("/", 1)[1])

    domain_id = await ui.do(add)

    def verify_fails(page: Any) -> None:
        page.get_by_role("button", name="Verify DNS records").click()
        message = page.locator("#verify-message")
        message.wait_for()
        assert "to fix" in message.inner_text()
        assert page.locator("#records .badge.missing").count() >= 3

    await ui.do(verify_fails)
    await ui.screenshot("records-missing")
    await _publish(ui, domain_id)

    def verify_passes(page: Any) -> None:
        page.get_by_role("button", name="Verify DNS records").click()
        page.get_by_text("mail can be sent from shop.test").wait_for()
        assert page.locator("#records .badge.missing").count() == 0
        page.reload()
        assert page.locator("#domain-status .badge.ok").inner_text() == "verified"

    await ui.do(verify_passes)
    await ui.screenshot("verified")

    def bad_input(page: Any) -> None:
        page.goto("/admin/domains")
        page.get_by_label("Domain", exact=True).fill("not a domain")
        page.get_by_role("button", name="Add domain").click()
        error = page.locator(".field-error")
        error.wait_for()
        assert page.get_by_label("Domain", exact=True).get_attribute("aria-invalid") == "true"

    await ui.do(bad_input)
    await ui.screenshot("invalid-name")
    assert not ui.console_errors, ui.console_errors


async def test_reply_forwarding_is_set_and_stopped_from_the_domain_page(ui: Ui) -> None:
    from tests.support.sending import verified_domain

    domain, _ = await verified_domain(ui.app, "replies.test")
    await ui.sign_in()

    def set_and_stop(page: Any) -> None:
        page.goto(f"/admin/domains/{domain.id}")
        page.get_by_label("Forward replies to").fill("support@example.org")
        page.locator("#reply-forwarding").get_by_role("button", name="Save").click()
        page.locator("#forward-to", has_text="support@example.org").wait_for()
        page.get_by_role("button", name="Stop forwarding").click()
        page.locator("#forward-to", has_text="not forwarded").wait_for()

    await ui.do(set_and_stop)
    stored = await ui.app.ctx.store.domains.get(ui.app.init.tenant_id, domain.id)
    assert stored is not None and stored.forward_to is None
