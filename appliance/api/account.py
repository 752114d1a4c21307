"""``/api/admin/account``: the signed-in person's own password and two-factor code.

Only for a person signed in to the admin UI (an API key has no account):
changing the password ends their other sessions; TOTP is turned on by proving
a code of the new secret, and off by proving a current code.
"""

from __future__ import annotations

import pyotp
import trio
from pydantic import BaseModel, Field
from quart import Blueprint, g

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.domain.passwords import hash_password, password_problem, verify_password
from appliance.store.users import User

blueprint = Blueprint("account", __name__, url_prefix="/api/admin/account")


class ChangePassword(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class EnableTotp(BaseModel):
    secret: str = Field(min_length=16, max_length=64)
    code: str = Field(max_length=10)


class DisableTotp(BaseModel):
    code: str = Field(max_length=10)


async def _me() -> User:
    caller = principal()
    user = await app_ctx().store.users.get(caller.user_id) if caller.user_id else None
    if user is None:
        raise ApiError(
            403,
            "this is for people signed in to the admin UI, not API keys",
            None,
            "sign in at /admin/login",
        )
    return user


def _code_ok(secret: str, code: str) -> bool:
    return pyotp.TOTP(secret).verify(code.replace(" ", ""), valid_window=1)


@blueprint.post("/password")
@requires(None)
@json_body(ChangePassword)
async def change_password(data: ChangePassword) -> dict[str, str]:
    me = await _me()
    if not me.password_hash:
        raise bad_request(
            "your account signs in through single sign-on and has no password here",
            "current_password",
        )
    if not await trio.to_thread.run_sync(verify_password, me.password_hash, data.current_password):
        raise bad_request("the current password is wrong", "current_password")
    problem = password_problem(data.new_password, email=me.email)
    if problem:
        raise bad_request(problem, "new_password")
    new_hash = await trio.to_thread.run_sync(hash_password, data.new_password)
    store = app_ctx().store
    await store.users.update(me.id, password_hash=new_hash)
    session = _current_session_hash()
    await store.admin_sessions.delete_for_user(me.id, keep=session)
    return {"message": "Password changed; your other sessions were signed out."}


def _current_session_hash() -> str | None:
    session = g.get("admin_session")
    return session.token_hash if session is not None else None


@blueprint.post("/totp")
@requires(None)
@json_body(EnableTotp)
async def enable_totp(data: EnableTotp) -> dict[str, str]:
    me = await _me()
    try:
        ok = _code_ok(data.secret, data.code)
    except (ValueError, TypeError):
        raise bad_request("secret is not a base32 TOTP secret", "secret") from None
    if not ok:
        raise bad_request(
            "that code does not match: enter the current 6-digit code your app shows",
            "code",
            "check that the phone's clock is right",
        )
    encrypted = app_ctx().secrets.encrypt(data.secret.encode())
    await app_ctx().store.users.update(me.id, totp_secret=encrypted)
    return {
        "message": "Two-factor sign-in is on: you will be asked for a code after your password."
    }


@blueprint.delete("/totp")
@requires(None)
@json_body(DisableTotp)
async def disable_totp(data: DisableTotp) -> dict[str, str]:
    me = await _me()
    if me.totp_secret is None:
        raise bad_request("two-factor sign-in is not on", "code")
    secret = app_ctx().secrets.decrypt(me.totp_secret).decode()
    if not _code_ok(secret, data.code):
        raise bad_request("that code does not match the current one", "code")
    await app_ctx().store.users.update(me.id, totp_secret=None)
    return {"message": "Two-factor sign-in is off."}
