"""The admin UI's blueprints and template filters, installed on the app in one call."""

from __future__ import annotations

from quart import Blueprint
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


def install_ui(app: QuartTrio) -> None:
    install_filters(app)
    for blueprint in UI_BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.after_serving(oidc_login.close_oidc_client)
