"""Every page of the navigation, as an owner, at 1280 px and 390 px: renders, no script
error, every form control labelled, nothing wider than the screen. Screenshots of each
land in the artifacts folder, to be looked at."""

from __future__ import annotations

from typing import Any

from appliance.ui.pages import NAV
from tests.browser.conftest import PHONE, WIDE, Ui
from tests.support.sending import verified_domain

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden' && !el.hidden && !el.closest('[hidden]'))
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map((el) => el.outerHTML.slice(0, 120))"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


async def test_every_page_renders_labelled_and_fits(ui: Ui) -> None:
    domain, _ = await verified_domain(ui.app, "shop.test")
    await ui.sign_in()
    paths = [item.path for item in NAV if item.path != "/admin/capture"]
    paths += [f"/admin/domains/{domain.id}", "/admin/account"]
    problems: list[str] = []

    def visit(page: Any, path: str) -> None:
        for viewport in (WIDE, PHONE):
            page.set_viewport_size(viewport)
            response = page.goto(path)
            if response is None or response.status != 200:
                problems.append(f"{path}: HTTP {response.status if response else '?'}")
                return
            page.wait_for_load_state("networkidle")
            for html in page.evaluate(UNLABELLED):
                problems.append(f"{path}: unlabelled control {html}")
            wider = page.evaluate(OVERFLOW)
            if wider > 2:
                problems.append(f"{path} at {viewport['width']} px: {wider} px too wide")
        page.set_viewport_size(WIDE)

    for path in paths:
        await ui.do(lambda page, p=path: visit(page, p))
        name = path.strip("/").replace("/", "-").removeprefix("admin-") or "dashboard"
        await ui.screenshot(name if name != "admin" else "dashboard")
    assert not problems, "\n".join(problems)
    assert not ui.console_errors, ui.console_errors
