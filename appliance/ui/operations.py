"""Settings and service health: the configuration in force, and every service's state."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint

from appliance.config import describe
from appliance.store.database import StoreError
from appliance.ui.pages import PageResult, ctx, page, render

blueprint = Blueprint("ui_operations", __name__, url_prefix="/admin")

SECRET_KEYS = frozenset({"secret_key", "oidc_client_secret", "database_url"})


def _shown(key: str, value: Any) -> str:
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = str(value).lower()
    text = str(value)
    if key in SECRET_KEYS and text:
        if key == "database_url" and "@" in text:  # keep the host, hide a password
            scheme, _, rest = text.partition("://")
            creds, _, host = rest.rpartition("@")
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:••••@{host}" if ":" in creds else text
        return "•••• (set)" if key != "database_url" else text
    return text


@blueprint.get("/settings")
@page("settings.read")
async def settings() -> PageResult:
    config = ctx().config
    rows = []
    for row in describe():
        value = _shown(row["key"], getattr(config, row["key"]))
        rows.append({**row, "value": value, "changed": value != row["default"]})
    return await render(
        "admin/settings.html",
        title="Settings",
        rows=rows,
        admin_url=config.admin_url,
        oidc_redirect_uri=f"{config.admin_url}oidc/callback",
    )


@blueprint.get("/health")
@page("settings.read")
async def health() -> PageResult:
    store = ctx().store
    database: dict[str, Any] = {"dialect": store.dialect}
    try:
        database["latency_ms"] = round(await store.db.ping() * 1000, 2)
        database["ok"] = True
    except StoreError as exc:
        database.update(ok=False, error=str(exc))
    depth = await store.queue.depth(now=time.time()) if database["ok"] else None
    return await render(
        "admin/health.html",
        title="Service health",
        services=ctx().health.snapshot(),
        database=database,
        depth=depth,
        node=ctx().node_id,
        listeners=ctx().listeners,
        http_url=ctx().http_url,
    )
