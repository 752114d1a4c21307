"""Issue 8's newcomer: from `postyard serve --capture` to a delivered message, in the browser.

Exactly what the README says to do on a fresh machine: start ``postyard serve
--capture`` on an empty data directory (a real process), read the admin URL and
login it prints, sign in, add a sending domain, send a test message from the
domain's page and see it DELIVERED on its message page and in the capture
mailbox. No DNS server, no MX: capture mode needs neither. With
``POSTYARD_BINARY`` set, the same journey runs against the built one-file binary.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.browser.conftest import BrowserThread, Ui
from tests.support.serve_process import free_port

LOGIN = re.compile(r"Admin login:\s+(\S+)\s+Admin password:\s+(\S+)", re.MULTILINE)
ADMIN_URL = re.compile(r"Admin URL:\s+(\S+)")


@dataclass
class Served:
    admin_url: str
    email: str
    password: str


def _command() -> list[str]:
    binary = os.environ.get("POSTYARD_BINARY")
    if binary:
        return [str(Path(binary).resolve()), "serve", "--capture"]
    return [sys.executable, "-m", "appliance.cli", "serve", "--capture"]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    port = free_port()
    env = {
        # A fresh shell: none of this machine's POSTYARD_* settings (POSTYARD_BINARY is the
        # test's own, and the appliance refuses unknown keys).
        **{k: v for k, v in os.environ.items() if not k.startswith("POSTYARD_")},
        "POSTYARD_DATA_DIR": str(tmp_path / "data"),
        "POSTYARD_HTTP_LISTEN": f"127.0.0.1:{port}",
        # A newcomer who is not root cannot bind 25 and 587; the README says so.
        "POSTYARD_INBOUND_LISTEN": "127.0.0.1:0",
        "POSTYARD_SUBMISSION_LISTEN": "127.0.0.1:0",
    }
    stderr = tmp_path / "serve.stderr"
    with stderr.open("wb") as err:
        process = await trio.lowlevel.open_process(
            _command(), env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            with trio.fail_after(60):
                while True:
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert process.returncode is None, stderr.read_text()
                    await trio.sleep(0.1)
        text = stderr.read_text()
        login, url = LOGIN.search(text), ADMIN_URL.search(text)
        assert login and url, text
        yield Served(url.group(1), login.group(1), login.group(2))
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
            with trio.move_on_after(20):
                await process.wait()
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def test_a_newcomer_reaches_a_delivered_message_in_the_ui(
    served: Served, browser_thread: BrowserThread
) -> None:
    def journey(context_dir: str) -> dict[str, Any]:
        context = browser_thread.browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        shots: dict[str, Any] = {}
        try:
            page.goto(served.admin_url)  # the printed URL sends the visitor to sign in
            page.get_by_label("Email").fill(served.email)
            page.get_by_label("Password").fill(served.password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Dashboard").wait_for()
            assert page.get_by_text("capture mode").first.is_visible()
            page.get_by_role("link", name="Domains").first.click()
            page.get_by_label("Domain", exact=True).fill("newcomer.example")
            page.get_by_role("button", name="Add domain").click()
            page.get_by_role("heading", name="newcomer.example").wait_for()
            page.get_by_label("To", exact=True).fill("friend@example.org")
            page.get_by_role("button", name="Send test message").click()
            page.wait_for_url("**/admin/messages?x_message_id=*")
            page.get_by_role("link", name="UTC").first.click()
            status = page.locator("#message-status", has_text="DELIVERED")
            for _ in range(40):  # the delivery engine settles it within a second or two
                if status.count():
                    break
                page.wait_for_timeout(250)
                page.reload()
            status.wait_for()
            shots["reply"] = page.locator("#last-reply").inner_text()
            page.screenshot(path=f"{context_dir}/newcomer-delivered-1280.png", full_page=True)
            page.get_by_role("link", name="Capture mailbox").click()
            page.get_by_role("link", name="UTC").first.click()
            page.get_by_role("heading", name="Test from Postyard").wait_for()
            shots["text"] = page.locator("#text-part").inner_text()
            shots["headers"] = page.locator("#headers").inner_text()
            page.screenshot(path=f"{context_dir}/newcomer-captured-1280.png", full_page=True)
        finally:
            context.close()
        return shots

    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen = await browser_thread.run(journey, str(ARTIFACTS))
    assert "captured" in seen["reply"]
    assert "It works" in seen["text"]
    assert "DKIM-Signature" in seen["headers"]


_ = Ui  # the shared fixtures live in conftest
