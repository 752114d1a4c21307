"""What every admin page shares: the signed-in session, the navigation, rendering.

``@page("messages.read")`` sends a visitor without a session to the sign-in
page, answers 403 with a page saying which permission is missing, and leaves
the session in ``g.admin_session``. ``render(template, **values)`` adds what
the layout needs: the navigation the role may see, the CSRF token, the
tenants to switch between, and whether every service is healthy.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec
from urllib.parse import quote

from quart import Response, current_app, g, redirect, render_template, request
from werkzeug.wrappers import Response as WerkzeugResponse

from appliance.admin_auth import SESSION_COOKIE, AdminSession
from appliance.context import AppContext

P = ParamSpec("P")
PageResult = str | Response | WerkzeugResponse | tuple[str, int]


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    permission: str | None
    section: str


NAV: tuple[NavItem, ...] = (
    NavItem("Dashboard", "/admin/", "stats.read", "Sending"),
    NavItem("Messages", "/admin/messages", "messages.read", "Sending"),
    NavItem("Live feed", "/admin/live", "events.stream.read", "Sending"),
    NavItem("Capture mailbox", "/admin/capture", "messages.read", "Sending"),
    NavItem("Templates", "/admin/templates", "templates.read", "Sending"),
    NavItem("Suppressions", "/admin/suppressions", "suppression.read", "Sending"),
    NavItem("Domains", "/admin/domains", "domains.read", "Setup"),
    NavItem("API keys", "/admin/api-keys", "api_keys.read", "Setup"),
    NavItem("Webhooks", "/admin/webhooks", "user.webhooks.event.settings.read", "Setup"),
    NavItem("IP pools & relays", "/admin/delivery", "ip_pools.read", "Setup"),
    NavItem("Inbound reports", "/admin/inbound", "relays.read", "Setup"),
    NavItem("Tenants", "/admin/tenants", "tenants.read", "Administration"),
    NavItem("Users", "/admin/users", "users.read", "Administration"),
    NavItem("Roles", "/admin/roles", "roles.read", "Administration"),
    NavItem("Service health", "/admin/health", "settings.read", "Administration"),
    NavItem("Settings", "/admin/settings", "settings.read", "Administration"),
)


def ctx() -> AppContext:
    context: AppContext = current_app.extensions["postyard"]
    return context


def session() -> AdminSession:
    current: AdminSession = g.admin_session
    return current


def login_redirect() -> WerkzeugResponse:
    target = request.full_path.rstrip("?")
    return redirect(f"/admin/login?next={quote(target)}")


def page(
    permission: str | None,
) -> Callable[[Callable[P, Awaitable[PageResult]]], Callable[P, Awaitable[PageResult]]]:
    def decorate(handler: Callable[P, Awaitable[PageResult]]) -> Callable[P, Awaitable[PageResult]]:
        @wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> PageResult:
            current = await ctx().sessions.open(request.cookies.get(SESSION_COOKIE))
            if current is None:
                return login_redirect()
            g.admin_session = current
            if permission is not None and not current.has(permission):
                return await forbidden(permission)
            return await handler(*args, **kwargs)

        return wrapper

    return decorate


async def forbidden(permission: str) -> tuple[str, int]:
    body = await render(
        "forbidden.html",
        title="Not allowed",
        permission=permission,
    )
    return body, 403


def visible_nav(current: AdminSession) -> list[tuple[str, list[NavItem]]]:
    sections: dict[str, list[NavItem]] = {}
    for item in NAV:
        if item.path == "/admin/capture" and not ctx().config.capture_mode:
            continue
        if item.permission is None or current.has(item.permission):
            sections.setdefault(item.section, []).append(item)
    return list(sections.items())


async def render(template: str, **values: Any) -> str:
    current: AdminSession | None = g.get("admin_session")
    context: dict[str, Any] = {"config": ctx().config, "now": time.time()}
    if current is not None:
        tenants = await ctx().store.tenants.all()
        context.update(
            admin=current,
            nav=visible_nav(current),
            csrf_token=current.csrf_token,
            tenants=tenants if current.user.tenant_id is None else [],
            tenant=next((t for t in tenants if t.id == current.tenant_id), None),
            services_ok=ctx().health.all_healthy(),
            current_path=request.path,
        )
    context.update(values)
    return await render_template(template, **context)
