"""Signing in through an OpenID Connect provider: authorization code flow with PKCE.

``/admin/login/oidc`` sends the browser to the provider with a fresh state,
nonce and PKCE verifier, kept in an encrypted cookie (``domain.oidc``
``seal_pending``); ``/admin/oidc/callback`` checks the answer, exchanges the
code, validates the ID token against the provider's JWKS and maps the user's
groups to a role (``oidc_role_map``). Every failure is shown on the sign-in
page with what to do (seed 000: "invalid redirect_uri", JWKS unreachable).
"""

from __future__ import annotations

import logging
import time

from quart import Blueprint, Response, current_app, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from appliance.domain.oidc import open_pending, role_for_groups, seal_pending
from appliance.domain.oidc_errors import OidcError, OidcFailure, no_role_error
from appliance.net.oidc import OidcClient
from appliance.store.users import EmailTakenError
from appliance.ui.login import log_in_user, login_page, safe_next
from appliance.ui.pages import ctx

log = logging.getLogger("appliance.ui.oidc")
blueprint = Blueprint("ui_oidc", __name__, url_prefix="/admin")

PENDING_COOKIE = "postyard_oidc"
PENDING_MAX_AGE = 600


def oidc_client() -> OidcClient:
    """This process's client (its discovery and JWKS caches live as long as the app)."""
    client: OidcClient | None = current_app.extensions.get("postyard.oidc")
    if client is None:
        client = OidcClient.from_config(ctx().config)
        current_app.extensions["postyard.oidc"] = client
    return client


async def close_oidc_client() -> None:
    client: OidcClient | None = current_app.extensions.pop("postyard.oidc", None)
    if client is not None:
        await client.aclose()


async def _failed(exc: OidcError) -> Response:
    log.warning("oidc login failed", extra={"reason": str(exc.reason), "error": exc.message})
    hint = f" {exc.hint[:1].upper()}{exc.hint[1:]}." if exc.hint else ""
    text = f"Single sign-on failed: {exc.message}.{hint}"
    response = await login_page(error=text, status=401)
    response.delete_cookie(PENDING_COOKIE, path="/admin/oidc/")
    return response


@blueprint.get("/login/oidc")
async def start() -> Response | WerkzeugResponse:
    config = ctx().config
    if not config.oidc_issuer:
        return await login_page(error="Single sign-on is not configured here.", status=404)
    try:
        auth = await oidc_client().start(config.oidc_redirect_uri, config.oidc_scopes)
    except OidcError as exc:
        return await _failed(exc)
    sealed = seal_pending(
        ctx().secrets, auth, now=time.time(), return_to=safe_next(request.args.get("next"))
    )
    response = redirect(auth.url)
    response.set_cookie(
        PENDING_COOKIE,
        sealed,
        max_age=PENDING_MAX_AGE,
        path="/admin/oidc/",
        httponly=True,
        secure=config.admin_url.startswith("https://"),
        samesite="Lax",  # the provider's redirect back is a cross-site navigation
    )
    return response


@blueprint.get("/oidc/callback")
async def callback() -> Response | WerkzeugResponse:
    config = ctx().config
    client = oidc_client()
    try:
        pending = open_pending(ctx().secrets, request.cookies.get(PENDING_COOKIE), now=time.time())
        claims = await client.complete(
            dict(request.args),
            pending,
            redirect_uri=config.oidc_redirect_uri,
            groups_claim=config.oidc_groups_claim,
        )
        role = role_for_groups(claims.groups, config.oidc_role_mapping, config.oidc_default_role)
        if role is None:
            raise no_role_error(claims.email or claims.subject, claims.groups)
        if await ctx().store.roles.get(role) is None:
            raise OidcError(
                f"oidc_role_map gives role {role!r}, which does not exist",
                "fix oidc_role_map (or oidc_default_role) or create the role on the Roles page",
                reason=OidcFailure.PROVIDER,
            )
        issuer = (await client.metadata()).issuer
        try:
            user = await ctx().store.users.upsert_oidc(
                issuer=issuer,
                subject=claims.subject,
                email=claims.email,
                name=claims.name,
                role=role,
                link_email=claims.email_verified is not False,
            )
        except EmailTakenError:
            raise OidcError(
                f"another account already uses {claims.email}",
                "the provider did not verify this address, so it was not linked; an admin "
                "can remove or rename the other account on the Users page",
            ) from None
    except OidcError as exc:
        return await _failed(exc)
    if user.disabled:
        return await _failed(
            OidcError(f"the account {user.email} is disabled here", "ask an admin to enable it")
        )
    response = await log_in_user(user, next_path=pending.return_to or "/admin/")
    response.delete_cookie(PENDING_COOKIE, path="/admin/oidc/")
    return response
