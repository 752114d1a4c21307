"""Browser tests: Debian's Chromium, headless, driven by Playwright, against a real appliance.

Playwright's sync API must be called from one thread, so the browser lives on a
dedicated worker thread (``BrowserThread``) and trio tests hand it blocks of
steps with ``await ui.do(lambda page: …)``; meanwhile the appliance, the test
DNS server and the scripted MX keep running in the test's trio loop. Every
address is on 127.0.0.1.

Screenshots go to ``tests/browser/artifacts/`` (or ``$POSTYARD_TEST_ARTIFACTS``),
one PNG per page and width; CI keeps them as artifacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.delivery import delivery_zones
from tests.support.dns_server import DnsServer
from tests.support.mx_fixtures import ScriptedMx, run_scripted_mx

CHROMIUM = os.environ.get("POSTYARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("POSTYARD_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
T = TypeVar("T")

pytestmark = pytest.mark.browser


def _chromium_missing() -> str | None:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        return (
            f"Debian's chromium is not installed at {CHROMIUM}: `apt-get install chromium "
            "chromium-driver` (.ci/run does), or point POSTYARD_CHROMIUM at it"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'"
    return None


class BrowserThread:
    """One thread that owns Playwright and a headless Chromium."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._playwright: Any = None
        self.browser: Any = None
        self.call(self._start)

    def _start(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        future = self._pool.submit(fn, *args)
        return await trio.to_thread.run_sync(future.result)

    def close(self) -> None:
        def stop() -> None:
            self.browser.close()
            self._playwright.stop()

        self.call(stop)
        self._pool.shutdown()


@pytest.fixture(scope="session")
def browser_thread() -> Iterator[BrowserThread]:
    missing = _chromium_missing()
    if missing:
        pytest.skip(missing)
    thread = BrowserThread()
    try:
        yield thread
    finally:
        thread.close()


@dataclass
class Ui:
    """A running appliance, its DNS and MX, and one browser page signed out."""

    app: RunningAppliance
    dns: DnsServer
    mx: ScriptedMx
    thread: BrowserThread
    test_name: str
    page: Any = None
    console_errors: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.app.base_url

    async def do(self, fn: Callable[[Any], T]) -> T:
        """Run browser steps ``fn(page)`` on the browser thread."""
        return await self.thread.run(fn, self.page)

    async def new_page(self, *, fresh_context: bool = False) -> Any:
        """Another tab of the same browser profile (signed in as the first), or, with
        ``fresh_context``, of a new profile with no cookies (another person)."""

        def make() -> Any:
            if fresh_context or self.page is None:
                context = self.thread.browser.new_context(viewport=WIDE, base_url=self.base_url)
                context.set_default_timeout(15_000)
            else:
                context = self.page.context
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    self.console_errors.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on("pageerror", lambda e: self.console_errors.append(str(e)))
            return page

        page = await self.thread.run(make)
        if self.page is None:
            self.page = page
        return page

    async def screenshot(self, name: str, page: Any = None) -> Path:
        """Save a full-page PNG at both widths: ``<test>-<name>-1280.png`` and ``-390.png``."""
        target = page or self.page
        stem = f"{self.test_name}-{name}"

        def shoot() -> Path:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            wide = ARTIFACTS / f"{stem}-1280.png"
            target.set_viewport_size(WIDE)
            target.screenshot(path=str(wide), full_page=True)
            target.set_viewport_size(PHONE)
            target.screenshot(path=str(ARTIFACTS / f"{stem}-390.png"), full_page=True)
            target.set_viewport_size(WIDE)
            return wide

        return await self.thread.run(shoot)

    async def sign_in(self, email: str | None = None, password: str | None = None) -> None:
        email = email or self.app.init.admin_email
        password = password or self.app.init.admin_password

        def steps(page: Any) -> None:
            page.goto("/admin/login")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/admin/")

        await self.do(steps)


@asynccontextmanager
async def open_ui(
    tmp_path: Path, database_url: str, thread: BrowserThread, name: str, **config: Any
) -> AsyncIterator[Ui]:
    """The appliance (HTTP, delivery, webhooks) delivering to a scripted MX via test DNS,
    and a browser page on it; ``config`` overrides settings."""
    dns = DnsServer(delivery_zones())
    async with trio.open_nursery() as nursery:
        await nursery.start(dns.serve)
        async with run_scripted_mx(tmp_path / "mx") as mx:
            settings = {
                "dns_nameservers": (dns.address,),
                "smtp_port": mx.port,
                "hostname": "postyard.test",
                "spf_include": "_spf.postyard.test",
                **config,
            }
            app_config = appliance_config(tmp_path / "data", database_url, **settings)
            async with run_appliance(app_config, services=("http", "delivery", "webhooks")) as app:
                ui = Ui(app, dns, mx, thread, name)
                await ui.new_page()
                try:
                    yield ui
                finally:
                    await thread.run(lambda: ui.page.context.close())
        nursery.cancel_scope.cancel()


def name_of(request: pytest.FixtureRequest) -> str:
    return str(request.node.name).removeprefix("test_")


@pytest.fixture
async def ui(
    tmp_path: Path, sqlite_url: str, browser_thread: BrowserThread, request: pytest.FixtureRequest
) -> AsyncIterator[Ui]:
    async with open_ui(tmp_path, sqlite_url, browser_thread, name_of(request)) as running:
        yield running
