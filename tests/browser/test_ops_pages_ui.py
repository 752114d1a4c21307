"""Suppressions, templates, IP pools/relays and inbound reports in the browser: each page's main
action clicked through in headless Chromium against a running appliance on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.store.templates import Generation, VersionContent
from tests.browser.conftest import Ui
from tests.support.inbound_reports import record_report
from tests.support.smtp_sink import StartSink
from tests.support.tls_certs import make_self_signed

USER, PASSWORD = "relay-user", "s3cret-Pa55"


def accept_dialogs(page: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


async def test_remove_a_suppression_and_see_it_gone(ui: Ui) -> None:
    store, tenant = ui.app.ctx.store, ui.app.init.tenant_id
    await store.suppressions.add(
        tenant,
        "bounces",
        "jane@example.com",
        reason="550 5.1.1 <jane@example.com>: Recipient address rejected: User unknown",
        status="5.1.1",
    )
    await store.suppressions.add(
        tenant, "bounces", "kim@example.org", reason="552 mailbox full", status="5.2.2"
    )
    await ui.sign_in()

    def search(page: Any) -> None:
        accept_dialogs(page)
        page.goto("/admin/suppressions")
        page.get_by_label("Email").fill("jane")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**email=jane**")
        assert page.locator("#suppressions tbody tr[data-email]").count() == 1

    await ui.do(search)
    await ui.screenshot("search")

    def remove(page: Any) -> None:
        page.get_by_role("button", name="Remove jane@example.com").click()
        page.get_by_text("No address starting with “jane” on this list.").wait_for()
        page.goto("/admin/suppressions?list=bounces")
        rows = page.locator("#suppressions tbody tr[data-email]")
        assert rows.count() == 1 and rows.first.get_attribute("data-email") == "kim@example.org"
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        path = download.value.path()
        text = Path(path).read_text()
        assert text.splitlines()[0] == "email,created,reason,status"
        assert "kim@example.org" in text and "jane@" not in text

    await ui.do(remove)
    assert await store.suppressions.get(tenant, "bounces", "jane@example.com") is None

    def add_unsubscribe(page: Any) -> None:
        page.get_by_role("link", name="Global unsubscribes").click()
        page.get_by_label("Addresses").fill("not an address")
        page.get_by_role("button", name="Add", exact=True).click()
        page.locator("form [role=alert]").get_by_text("is not a valid email address").wait_for()
        page.get_by_label("Addresses").fill("opted.out@example.com")
        page.get_by_role("button", name="Add", exact=True).click()
        page.locator('tr[data-email="opted.out@example.com"]').wait_for()

    await ui.do(add_unsubscribe)
    await ui.screenshot("unsubscribes")
    assert not ui.console_errors, ui.console_errors


async def test_preview_a_template_version_and_see_a_handlebars_error(ui: Ui) -> None:
    store, tenant = ui.app.ctx.store, ui.app.init.tenant_id
    template = await store.templates.create(tenant, "Welcome", Generation.DYNAMIC)
    await store.templates.add_version(
        tenant,
        template.id,
        VersionContent(
            name="First",
            subject="Welcome, {{name}}",
            html_content=(
                "<h1 style='font-family:sans-serif'>Hello <b>{{name}}</b></h1>"
                "<p>Your plan: {{plan}}</p><script>parent.document.title='owned'</script>"
            ),
            plain_content="Hello {{name}}",
            test_data='{"name": "Ann", "plan": "Pro"}',
        ),
        active=True,
    )
    await ui.sign_in()

    def preview(page: Any) -> None:
        page.goto("/admin/templates")
        page.get_by_role("link", name="Welcome").click()
        page.get_by_role("heading", name="Preview").wait_for()
        page.get_by_label("Test data").last.fill('{"name": "Zoë", "plan": "Team"}')
        page.get_by_role("button", name="Preview", exact=True).click()
        page.locator("#preview").wait_for()
        assert page.locator("#preview-subject").inner_text() == "Welcome, Zoë"
        frame = page.frame_locator("#preview-html")
        assert frame.locator("b").inner_text() == "Zoë"
        assert page.locator("#preview-text").inner_text() == "Hello Zoë"
        assert page.locator("#preview-html").get_attribute("sandbox") == ""
        assert page.title() != "owned"  # the preview's script never ran

    await ui.do(preview)
    await ui.screenshot("preview")

    def broken(page: Any) -> None:
        page.get_by_label("Test data").last.fill("{not json")
        page.get_by_role("button", name="Preview", exact=True).click()
        page.get_by_text("not valid JSON").wait_for()
        page.get_by_label("HTML", exact=True).fill("<p>{{#if name}}unclosed</p>")
        page.get_by_role("button", name="Save version").click()
        error = page.locator("#version-form .field-error")
        error.wait_for()
        assert "line 1, column" in error.inner_text()
        assert page.get_by_label("HTML", exact=True).get_attribute("aria-invalid") == "true"

    await ui.do(broken)
    await ui.screenshot("handlebars-error")
    blocked = [e for e in ui.console_errors if "frame is sandboxed" in e]
    assert len(blocked) == 1  # Chromium refused the preview's script: the sandbox holds
    assert [e for e in ui.console_errors if e not in blocked] == []


async def test_relay_connection_test_shows_each_step_and_the_failing_one(
    ui: Ui, start_sink: StartSink, tmp_path: Path
) -> None:
    cert = make_self_signed(tmp_path / "tls")
    sink = await start_sink(
        "--cert", str(cert.cert_path), "--key", str(cert.key_path), "--auth", f"{USER}:{PASSWORD}"
    )
    await ui.sign_in()

    def create_and_fail(page: Any) -> None:
        accept_dialogs(page)
        page.goto("/admin/delivery")
        page.locator("summary", has_text="Add a relay").click()
        card = page.locator("details", has_text="Add a relay")
        card.get_by_label("Name", exact=True).fill("sink")
        card.get_by_label("Host", exact=True).fill("127.0.0.1")
        card.get_by_label("Port").fill(str(sink.port))
        card.get_by_label("Check the relay's certificate").uncheck()
        card.get_by_label("Username").fill(USER)
        card.get_by_label("Password").fill("wrong-password")
        card.get_by_role("button", name="Add relay").click()
        page.locator('tr[data-relay="sink"]').wait_for()
        page.get_by_role("button", name="Test relay sink").click()
        failed = page.locator("#relay-test-steps tr.failed")
        failed.wait_for()
        assert failed.get_attribute("data-step") == "auth"
        assert "535" in failed.inner_text()
        assert "failed at auth" in page.locator("#relay-test-message").inner_text()
        names = page.locator("#relay-test-steps tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.step)"
        )
        assert names[:6] == ["connect", "greeting", "ehlo", "starttls", "ehlo", "auth"]

    await ui.do(create_and_fail)
    await ui.screenshot("relay-auth-failed")

    def fix_and_pass(page: Any) -> None:
        page.get_by_role("button", name="Edit relay sink").click()
        dialog = page.locator("dialog[open]")
        dialog.get_by_label("Password").fill(PASSWORD)
        dialog.get_by_role("button", name="Save").click()
        page.wait_for_load_state("load")
        page.locator('tr[data-relay="sink"]').wait_for()
        page.get_by_role("button", name="Run test").click()
        page.locator("#relay-test-message.ok").wait_for()
        assert page.locator("#relay-test-steps tr.failed").count() == 0
        steps = page.locator("#relay-test-steps tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.step)"
        )
        assert steps[-4:] == ["mail", "rcpt", "data", "quit"]

    await ui.do(fix_and_pass)
    await ui.screenshot("relay-passed")
    [received] = sink.received()
    assert received["authenticated"] is True and received["tls"] is True

    def pool_with_relay(page: Any) -> None:
        page.locator("summary", has_text="Create an IP pool").click()
        card = page.locator("details", has_text="Create an IP pool")
        card.get_by_label("Name", exact=True).fill("transactional")
        card.get_by_label("Source addresses").fill("127.0.0.1")
        card.get_by_label("Relay", exact=True).select_option(label=f"sink (127.0.0.1:{sink.port})")
        card.get_by_label("Start warm-up now").check()
        card.get_by_role("button", name="Create pool").click()
        row = page.locator('tr[data-pool="transactional"]')
        row.wait_for()
        assert "day 1 of 14" in row.inner_text() and "0 of 50 sent today" in row.inner_text()

    await ui.do(pool_with_relay)
    await ui.screenshot("pools")
    assert not ui.console_errors, ui.console_errors


async def test_open_an_inbound_report(ui: Ui) -> None:
    recorded = await record_report(
        ui.app, envelope_to="bounces@bounces.shop.test", tenant_id=ui.app.init.tenant_id
    )
    await ui.sign_in()

    def open_report(page: Any) -> None:
        page.goto("/admin/inbound")
        row = page.locator(f'tr[data-report="{recorded.report.id}"]')
        assert "gone@example.org" in row.inner_text() and "5.1.1" in row.inner_text()
        row.get_by_role("link").first.click()
        page.wait_for_url(f"**/admin/inbound/{recorded.report.id}")
        page.get_by_role("heading", name="Parsed report").wait_for()
        assert "Reporting-MTA: dns; mx1.example.org" in page.locator("#raw").inner_text()

    await ui.do(lambda page: page.goto("/admin/inbound"))
    await ui.screenshot("list")
    await ui.do(open_report)
    await ui.screenshot("detail")
    assert not ui.console_errors, ui.console_errors
