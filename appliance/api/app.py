"""The quart-trio application: blueprints, request ids, access log, error shapes."""

from __future__ import annotations

import logging
import re
import time

from quart import Response, g, request
from quart_schema import HttpSecurityScheme, Info, QuartSchema
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from appliance import logs
from appliance.api import (
    account,
    api_keys,
    asm_groups,
    auth_me,
    captures,
    domains,
    event_ingest,
    event_stream,
    inbound_reports,
    ip_pools,
    mail_send,
    messages,
    ops,
    relay_test,
    relays,
    roles,
    stats,
    suppressions,
    templates,
    tenant_admin,
    tracking,
    users,
    webhook_settings,
    webhooks,
)
from appliance.api.body_complete import wait_for_request_body
from appliance.api.errors import ApiError, FieldError, error_response
from appliance.api.openapi import PostyardOpenAPI
from appliance.api.rate_limit import RateLimiter
from appliance.context import AppContext
from appliance.domain.ids import request_id as new_request_id
from appliance.domain.send_request import MAX_REQUEST_BYTES
from appliance.store.database import StoreError, StoreFull
from appliance.ui.routes import install_ui
from appliance.ui.web_root import web_root

log = logging.getLogger("appliance.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def create_app(ctx: AppContext) -> QuartTrio:
    web = web_root()
    app = QuartTrio(
        "appliance",
        template_folder=str(web / "templates"),
        static_folder=str(web / "static"),
        static_url_path="/admin/static",
    )
    # Twice the largest request: a body over the limit is still read (and dropped)
    # so its client gets the 413 rather than a broken pipe (api/request_body.py).
    app.config["MAX_CONTENT_LENGTH"] = 2 * MAX_REQUEST_BYTES
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["postyard"] = ctx
    QuartSchema(
        app,
        info=Info(title="Postyard API", version="0.1.0"),
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        security_schemes={"BearerAuth": HttpSecurityScheme(scheme="bearer")},
        security=[{"BearerAuth": []}],
        openapi_provider_class=PostyardOpenAPI,
    )
    limiter = RateLimiter(limit=ctx.config.api_rate_limit, window=ctx.config.api_rate_window)
    app.extensions["postyard.rate_limiter"] = limiter

    for blueprint in (
        ops.blueprint,
        api_keys.blueprint,
        auth_me.blueprint,
        domains.blueprint,
        mail_send.blueprint,
        messages.blueprint,
        templates.blueprint,
        relay_test.blueprint,
        relays.blueprint,
        ip_pools.blueprint,
        inbound_reports.blueprint,
        suppressions.blueprint,
        stats.blueprint,
        asm_groups.blueprint,
        tracking.blueprint,
        webhook_settings.blueprint,
        webhooks.blueprint,
        event_stream.blueprint,
        event_ingest.blueprint,
        tenant_admin.blueprint,
        account.blueprint,
        users.blueprint,
        roles.blueprint,
        captures.blueprint,
    ):
        app.register_blueprint(blueprint)
    install_ui(app)

    @app.before_request
    async def start_request() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID_RE.match(supplied) else new_request_id()
        g.started = time.perf_counter()
        logs.bind(request_id=g.request_id)

    @app.after_request
    async def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id") or new_request_id()
        for name, value in g.get("rate_limit_headers", {}).items():
            response.headers[name] = value
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        duration = time.perf_counter() - g.get("started", time.perf_counter())
        ctx.metrics.http_requests.labels(request.method, route, str(response.status_code)).inc()
        ctx.metrics.http_duration.labels(route).observe(duration)
        if not route.startswith(("/healthz", "/metrics")):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(duration * 1000, 2),
                    **({"tenant_id": g.principal.tenant_id} if g.get("principal") else {}),
                },
            )
        return response

    @app.errorhandler(ApiError)
    async def on_api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.errors, exc.headers)

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {
            400: "Bad Request",
            404: "not found",
            405: "method not allowed",
            413: "content too large",
            415: "unsupported media type",
        }.get(status, (exc.name or "error").lower())
        headers = {}
        if status == 405 and exc.get_response() is not None:
            allow = exc.get_response().headers.get("Allow")
            if allow:
                headers["Allow"] = allow
        return error_response(status, [FieldError(message)], headers)

    @app.errorhandler(StoreFull)
    async def on_store_full(exc: StoreFull) -> Response:
        # RFC 4918 507 Insufficient Storage: the request was not stored; earlier mail is kept.
        log.error("the store is full", extra={"error": str(exc)})
        help = "free space on the database volume, then retry: nothing of this request was kept"
        return error_response(507, [FieldError(str(exc), None, help)], {"Retry-After": "60"})

    @app.errorhandler(StoreError)
    async def on_store_error(exc: StoreError) -> Response:
        # The database did not answer (restarting, unreachable, locked): a passing state.
        log.error("the store is unavailable", extra={"error": str(exc)})
        help = (
            "retry in a few seconds; send an Idempotency-Key so that a retry of a request "
            "that was in fact stored is not stored twice"
        )
        return error_response(503, [FieldError(str(exc), None, help)], {"Retry-After": "5"})

    @app.errorhandler(Exception)
    async def on_crash(exc: Exception) -> Response:
        log.error("unhandled error in request", exc_info=exc)
        return error_response(
            500,
            [FieldError("internal server error", None, f"request id {g.get('request_id')}")],
        )

    # hypercorn hangs a keep-alive connection answered before its body arrived.
    app.asgi_app = wait_for_request_body(app.asgi_app)  # type: ignore[method-assign,assignment]
    return app
