"""The admin UI's blueprints and template filters, installed on the app in one call."""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from appliance.ui import (
    account,
    api_keys,
    capture,
    dashboard,
    delivery_settings,
    domains,
    inbound,
    live_feed,
    login,
    messages,
    oidc_login,
    operations,
    people,
    suppressions,
    templates_pages,
    webhooks,
)
from appliance.ui.filters import install_filters

UI_BLUEPRINTS: tuple[Blueprint, ...] = (
    login.blueprint,
    dashboard.blueprint,
    domains.blueprint,
    suppressions.blueprint,
    templates_pages.blueprint,
    delivery_settings.blueprint,
    inbound.blueprint,
    messages.blueprint,
    api_keys.blueprint,
    webhooks.blueprint,
    live_feed.blueprint,
    account.blueprint,
    operations.blueprint,
    people.blueprint,
    capture.blueprint,
    oidc_login.blueprint,
)


# Scripts only from this site (no inline script anywhere); e-mail previews in sandboxed
# frames may show remote images; nobody may frame the admin UI.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https: http:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def add_security_headers(response: Response) -> Response:
    if request.path.startswith("/admin"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
    return response


def install_ui(app: QuartTrio) -> None:
    install_filters(app)
    for blueprint in UI_BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.after_request(add_security_headers)
    app.after_serving(oidc_login.close_oidc_client)
