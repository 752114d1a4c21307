"""Operations endpoints: liveness, readiness with every service's health, metrics."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response
from quart_schema import hide

from appliance.api.authz import app_ctx
from appliance.store.database import StoreError

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
@hide
async def healthz() -> dict[str, Any]:
    """The process answers: nothing more (for a load balancer's liveness check)."""
    return {"status": "ok"}


@blueprint.get("/readyz")
@hide
async def readyz() -> tuple[dict[str, Any], int]:
    """Ready only when the database answers and every service runs with a fresh heartbeat."""
    ctx = app_ctx()
    database: dict[str, Any] = {"dialect": ctx.store.dialect}
    try:
        database["latency_ms"] = round(await ctx.store.db.ping() * 1000, 2)
        database["ok"] = True
    except StoreError as exc:
        database["ok"] = False
        database["error"] = str(exc)
    services = ctx.health.snapshot()
    ready = database["ok"] and all(s["healthy"] for s in services.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "database": database,
        "services": services,
        # A staging box (postyard serve --capture) delivers nothing: say so where monitors look.
        "capture_mode": ctx.config.capture_mode,
    }
    return body, 200 if ready else 503


@blueprint.get("/metrics")
@hide
async def metrics() -> Response:
    return Response(
        app_ctx().metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8"
    )
