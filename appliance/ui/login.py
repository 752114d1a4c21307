"""Signing in and out of the admin UI: password, TOTP second step, lock-out, tenant switch.

Wrong passwords and codes count against the account: ``admin_login_max_failures``
in a row lock it for ``admin_lockout_duration``. Every client address also has a
budget of attempts per minute (``admin_login_rate_limit``) across all accounts.
The sign-in form carries a CSRF token tied to a cookie (double submit), since
there is no session yet to hold one.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import pyotp
import trio
from quart import Blueprint, Response, current_app, g, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from appliance.admin_auth import SESSION_COOKIE, AdminSession, NewSession
from appliance.api.rate_limit import RateLimiter
from appliance.domain.passwords import hash_password, needs_rehash, verify_password
from appliance.store.users import User
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_login", __name__, url_prefix="/admin")

LOGIN_CSRF_COOKIE = "postyard_login_csrf"
WRONG_CREDENTIALS = "Wrong email or password."


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: only a path of the admin UI (never another site)."""
    if raw and raw.startswith("/admin") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/admin/"


def _secure() -> bool:
    return ctx().config.admin_url.startswith("https://")


def _limiter() -> RateLimiter:
    limiter: RateLimiter | None = current_app.extensions.get("postyard.login_limiter")
    if limiter is None:
        limiter = RateLimiter(limit=ctx().config.admin_login_rate_limit, window=60.0)
        current_app.extensions["postyard.login_limiter"] = limiter
    return limiter


def set_session_cookie(response: Response | WerkzeugResponse, new: NewSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        expires=new.expires_at,
        httponly=True,
        secure=_secure(),
        samesite="Lax",
        path="/",
    )


async def log_in_user(user: User, *, next_path: str = "/admin/") -> WerkzeugResponse:
    """Start a full session for a user who has proven who they are (password+TOTP, OIDC)."""
    await ctx().store.users.record_login(user.id, now=time.time())
    new = await ctx().sessions.start(user, mfa_pending=False, remote_addr=request.remote_addr)
    response = redirect(safe_next(next_path))
    set_session_cookie(response, new)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin")
    return response


async def login_page(
    *, error: str | None = None, status: int = 200, email: str = "", next_path: str = "/admin/"
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    config = ctx().config
    body = await render(
        "login.html",
        title="Sign in",
        error=error,
        email=email,
        next_path=safe_next(next_path),
        login_csrf=token,
        oidc_enabled=bool(config.oidc_issuer),
        oidc_label=config.oidc_button_label or "Sign in with single sign-on",
        oidc_error=request.args.get("oidc_error"),
    )
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, secure=_secure(), samesite="Strict", path="/admin"
    )
    return response


@blueprint.get("/login")
async def login_form() -> Response:
    return await login_page(next_path=request.args.get("next", "/admin/"))


def _locked_message(user: User, now: float) -> str | None:
    if user.locked_until is None or user.locked_until <= now:
        return None
    minutes = max(1, round((user.locked_until - now) / 60))
    return (
        f"This account is locked after {ctx().config.admin_login_max_failures} failed sign-ins. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an admin to unlock it "
        "on the Users page."
    )


async def _count_failure(user: User) -> str:
    config = ctx().config
    now = time.time()
    updated = await ctx().store.users.record_failed_login(
        user.id,
        max_failures=config.admin_login_max_failures,
        lockout=config.admin_lockout_duration,
        now=now,
    )
    locked = _locked_message(updated, now) if updated else None
    return locked or WRONG_CREDENTIALS


def _check_login_csrf(form: Any) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = form.get("csrf_token", "")
    return bool(cookie) and hmac.compare_digest(cookie, sent)


@blueprint.post("/login")
async def login_submit() -> Response | WerkzeugResponse:
    form = await request.form
    email = form.get("email", "").strip()
    next_path = form.get("next", "/admin/")
    if not _check_login_csrf(form):
        return await login_page(
            error="The sign-in form expired. Please sign in again.",
            status=400,
            email=email,
            next_path=next_path,
        )
    decision = _limiter().hit(f"login:{request.remote_addr}")
    if not decision.allowed:
        return await login_page(
            error="Too many sign-in attempts from your address. Wait a minute and try again.",
            status=429,
            email=email,
            next_path=next_path,
        )
    user = await ctx().store.users.get_by_email(email) if email else None
    password = form.get("password", "")
    stored_hash = user.password_hash if user is not None and not user.disabled else None
    # The same argon2 work whether or not the account exists, off the event loop.
    matches = await trio.to_thread.run_sync(verify_password, stored_hash, password)
    if user is None or stored_hash is None:
        return await login_page(
            error=WRONG_CREDENTIALS, status=401, email=email, next_path=next_path
        )
    locked = _locked_message(user, time.time())
    if locked:
        return await login_page(error=locked, status=403, email=email, next_path=next_path)
    if not matches:
        message = await _count_failure(user)
        return await login_page(error=message, status=401, email=email, next_path=next_path)
    if needs_rehash(stored_hash):
        rehashed = await trio.to_thread.run_sync(hash_password, password)
        await ctx().store.users.update(user.id, password_hash=rehashed)
    if user.has_totp:
        new = await ctx().sessions.start(user, mfa_pending=True, remote_addr=request.remote_addr)
        response = redirect(f"/admin/login/totp?next={safe_next(next_path)}")
        set_session_cookie(response, new)
        return response
    return await log_in_user(user, next_path=next_path)


def totp_matches(encrypted_secret: str, code: str) -> bool:
    secret = ctx().secrets.decrypt(encrypted_secret).decode()
    return pyotp.TOTP(secret).verify(code.replace(" ", ""), valid_window=1)


async def _pending() -> AdminSession | None:
    return await ctx().sessions.open(request.cookies.get(SESSION_COOKIE), allow_mfa_pending=True)


@blueprint.get("/login/totp")
async def totp_form() -> PageResult:
    pending = await _pending()
    if pending is None or not pending.mfa_pending:
        return redirect("/admin/login")
    return await render(
        "login_totp.html",
        title="Two-factor code",
        error=None,
        next_path=safe_next(request.args.get("next")),
        pending_csrf=pending.csrf_token,
    )


@blueprint.post("/login/totp")
async def totp_submit() -> PageResult:
    pending = await _pending()
    if pending is None or not pending.mfa_pending:
        return redirect("/admin/login")
    form = await request.form
    next_path = safe_next(form.get("next"))
    if not pending.csrf_matches(form.get("csrf_token")):
        return redirect("/admin/login")
    user = pending.user
    now = time.time()
    locked = _locked_message(user, now)
    if locked is None and user.totp_secret and totp_matches(user.totp_secret, form.get("code", "")):
        await ctx().sessions.end(request.cookies.get(SESSION_COOKIE, ""))
        return await log_in_user(user, next_path=next_path)
    message = locked or await _count_failure(user)
    if message == WRONG_CREDENTIALS:
        message = "Wrong code. Use the current 6-digit code of your authenticator app."
    body = await render(
        "login_totp.html",
        title="Two-factor code",
        error=message,
        next_path=next_path,
        pending_csrf=pending.csrf_token,
    )
    return body, 401


@blueprint.post("/logout")
@page(None)
async def logout() -> PageResult:
    form = await request.form
    if not session().csrf_matches(form.get("csrf_token")):
        return redirect("/admin/")
    await ctx().sessions.end(request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/admin/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@blueprint.post("/tenant")
@page(None)
async def switch_tenant() -> PageResult:
    form = await request.form
    current = session()
    if not current.csrf_matches(form.get("csrf_token")):
        return redirect("/admin/")
    tenant_id = form.get("tenant_id", "")
    if current.user.tenant_id is None and await ctx().store.tenants.get(tenant_id):
        await ctx().sessions.switch_tenant(current, tenant_id)
    g.pop("admin_session", None)
    return redirect(safe_next(form.get("next")))
