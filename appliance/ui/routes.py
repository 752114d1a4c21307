"""The admin UI's blueprints and template filters, installed on the app in one call."""

from __future__ import annotations

from quart import Blueprint
from quart_trio import QuartTrio

from appliance.ui import (
    dashboard,
    delivery_settings,
    domains,
    inbound,
    login,
    suppressions,
    templates_pages,
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
)


def install_ui(app: QuartTrio) -> None:
    install_filters(app)
    for blueprint in UI_BLUEPRINTS:
        app.register_blueprint(blueprint)
