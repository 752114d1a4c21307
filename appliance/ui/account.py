"""The signed-in person's account: password and two-factor (TOTP) enrolment."""

from __future__ import annotations

import pyotp
import segno
from quart import Blueprint

from appliance.ui.pages import PageResult, page, render, session

blueprint = Blueprint("ui_account", __name__, url_prefix="/admin/account")
ISSUER = "Postyard"


@blueprint.get("")
@page(None)
async def account() -> PageResult:
    user = session().user
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#111827", title="TOTP QR code")
    return await render(
        "admin/account.html",
        title="Account",
        user=user,
        new_secret=secret,
        otpauth_uri=uri,
        qr_svg=qr_svg,
    )
