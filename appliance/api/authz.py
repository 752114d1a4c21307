"""Authentication and scope checks for API routes, as a decorator.

``@requires("api_keys.read")`` authenticates the Bearer key, refuses a key
without the scope with 403 ``Missing required scope: api_keys.read``,
applies the key's rate limit, and leaves the caller in ``g.principal``.
``@requires(None)`` needs any valid key.

Without an ``Authorization`` header, the admin UI's session cookie is taken
instead (``appliance/admin_auth.py``): the person acts with their role's
permissions in their current tenant, and a state-changing request must carry
the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from quart import current_app, g, request, websocket

from appliance import logs
from appliance.admin_auth import SESSION_COOKIE, AdminSession
from appliance.api.errors import ApiError, missing_scope
from appliance.api.rate_limit import RateLimiter
from appliance.auth import AuthFailure, Principal
from appliance.context import AppContext

P = ParamSpec("P")
R = TypeVar("R")


def app_ctx() -> AppContext:
    ctx: AppContext = current_app.extensions["postyard"]
    return ctx


def principal() -> Principal:
    p: Principal = g.principal
    return p


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def session_principal(*, is_websocket: bool = False) -> Principal | None:
    """The admin UI session's principal when the request has no API key but a session cookie.

    Refuses (403) a state-changing request without the session's CSRF token, and a
    websocket upgrade from another origin.
    """
    source = websocket if is_websocket else request
    if source.headers.get("Authorization"):
        return None
    session: AdminSession | None = await app_ctx().sessions.open(source.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    if is_websocket:
        origin = source.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != source.host:
            raise ApiError(403, f"websocket from another origin ({origin}) refused", None, None)
    elif request.method not in SAFE_METHODS:
        sent = request.headers.get("X-CSRF-Token") or (await request.form).get("csrf_token")
        if not session.csrf_matches(sent):
            raise ApiError(
                403,
                "CSRF token missing or wrong for this admin session",
                None,
                "reload the admin page and try again",
            )
    g.admin_session = session
    return session.principal


async def authenticate(scope: str | None) -> Principal:
    from_session = await session_principal()
    result = from_session or await app_ctx().authenticator.authenticate(_bearer())
    if isinstance(result, AuthFailure):
        status = 403 if result is AuthFailure.TENANT_SUSPENDED else 401
        raise ApiError(status, result.value, None, None)
    limiter: RateLimiter = current_app.extensions["postyard.rate_limiter"]
    decision = limiter.hit(result.key_id)
    g.rate_limit_headers = decision.headers()
    g.principal = result
    logs.bind(tenant_id=result.tenant_id)
    if not decision.allowed:
        raise ApiError(429, "too many requests", None, None)
    if scope is not None and not result.has(scope):
        raise missing_scope(scope)
    return result


def requires(scope: str | None) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    def decorate(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await authenticate(scope)
            return await handler(*args, **kwargs)

        wrapper.__dict__.setdefault("_postyard_scope", scope)
        return wrapper

    return decorate


def required_scope_of(handler: Any) -> str | None:
    return getattr(handler, "_postyard_scope", None)
