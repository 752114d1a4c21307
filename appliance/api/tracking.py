"""Public tracking endpoints (no API key): open pixel, click redirect, unsubscribe.

- ``GET /t/o/{token}``: a 1×1 GIF and an ``open`` event;
- ``GET /t/c/{token}``: 302 to the URL the token was signed for and a
  ``click`` event; a token that does not verify gets a 404 page, never a
  redirect;
- ``GET /t/u/{token}``: a small page with a confirm button (and, for mail
  sent in an ASM group, the choice between that group and all mail);
- ``POST /t/u/{token}``: RFC 8058 one-click (body ``List-Unsubscribe=One-Click``)
  or the page's form: the recipient goes on the tenant's global unsubscribes
  or into the message's ASM group, with an ``unsubscribe`` /
  ``group_unsubscribe`` event (``store.tracking``).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from typing import Any

from quart import Blueprint, Response, request

from appliance.api.authz import app_ctx
from appliance.domain.acceptance import suppression_key
from appliance.domain.tracking_tokens import (
    TRACKING_KEY_PURPOSE,
    UNSUBSCRIBE_KEY_PURPOSE,
    InvalidToken,
    verify_click_token,
    verify_open_token,
    verify_unsubscribe_token,
)
from appliance.store.messages import Message

log = logging.getLogger("appliance.tracking")

blueprint = Blueprint("tracking", __name__, url_prefix="/t")

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, max-age=0", "X-Robots-Tag": "noindex"}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
    "line-height:1.5}button{font-size:1rem;padding:.5rem 1.25rem}fieldset{border:0;padding:0}"
)


def _page(title: str, body: str, status: int = 200) -> Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><main><h1>{html.escape(title)}</h1>"
        f"{body}</main></body></html>"
    )
    return Response(text, status, headers=_NO_STORE, content_type="text/html; charset=utf-8")


def _invalid_link() -> Response:
    return _page(
        "Link not valid",
        "<p>This link is not valid: it may have been copied incompletely. "
        "Open it again from the email.</p>",
        404,
    )


def _event_data(message: Message, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"x_message_id": message.request_id}
    if message.category:
        data["category"] = [message.category]
    agent = request.headers.get("User-Agent")
    if agent:
        data["useragent"] = agent[:512]
    if request.remote_addr:
        data["ip"] = request.remote_addr
    data.update(extra)
    return data


async def _message(message_id: str) -> Message | None:
    return await app_ctx().store.messages.get(None, message_id)


def _secret(purpose: str) -> bytes:
    return app_ctx().secrets.derive(purpose)


@blueprint.get("/o/<token>")
async def open_pixel(token: str) -> Response:
    try:
        message_id = verify_open_token(_secret(TRACKING_KEY_PURPOSE), token)
    except InvalidToken:
        return _invalid_link()
    message = await _message(message_id)
    if message is not None:
        await app_ctx().store.tracking.record(
            message.tenant_id,
            message.id,
            "open",
            message.recipient,
            _event_data(message),
            now=time.time(),
        )
    return Response(PIXEL_GIF, 200, headers=_NO_STORE, content_type="image/gif")


@blueprint.get("/c/<token>")
async def click(token: str) -> Response:
    try:
        message_id, url = verify_click_token(_secret(TRACKING_KEY_PURPOSE), token)
    except InvalidToken:
        return _invalid_link()
    message = await _message(message_id)
    if message is not None:
        await app_ctx().store.tracking.record(
            message.tenant_id,
            message.id,
            "click",
            message.recipient,
            _event_data(message, url=url),
            now=time.time(),
        )
    return Response("", 302, headers={**_NO_STORE, "Location": url})


async def _asm_group_id(message: Message) -> int | None:
    """The ``asm.group_id`` the message was sent with, if any."""
    raw = await app_ctx().store.messages.payload(message.request_id)
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    asm = body.get("asm") if isinstance(body, dict) else None
    group_id = asm.get("group_id") if isinstance(asm, dict) else None
    return group_id if isinstance(group_id, int) and not isinstance(group_id, bool) else None


async def _unsubscribe_target(token: str) -> tuple[Message, int | None] | None:
    try:
        message_id = verify_unsubscribe_token(_secret(UNSUBSCRIBE_KEY_PURPOSE), token)
    except InvalidToken:
        return None
    message = await _message(message_id)
    if message is None:
        return None
    return message, await _asm_group_id(message)


@blueprint.get("/u/<token>")
async def unsubscribe_page(token: str) -> Response:
    target = await _unsubscribe_target(token)
    if target is None:
        return _invalid_link()
    message, group_id = target
    group = None
    if group_id is not None:
        group = await app_ctx().store.asm_groups.get(message.tenant_id, group_id)
    address = html.escape(message.recipient)
    if group is None:
        choice = '<input type="hidden" name="scope" value="all">'
        question = f"<p>Stop sending email to <strong>{address}</strong>?</p>"
    else:
        name = html.escape(group.name)
        about = f" ({html.escape(group.description)})" if group.description else ""
        choice = (
            "<fieldset><legend>Unsubscribe from:</legend>"
            f'<p><label><input type="radio" name="scope" value="group" checked> '
            f"Only “{name}” emails{about}</label></p>"
            '<p><label><input type="radio" name="scope" value="all"> '
            "All email from this sender</label></p></fieldset>"
        )
        question = f"<p>Which email should no longer go to <strong>{address}</strong>?</p>"
    button = '<button type="submit">Unsubscribe</button>'
    form = f'<form method="post">{question}{choice}{button}</form>'
    return _page("Unsubscribe", form)


@blueprint.post("/u/<token>")
async def unsubscribe(token: str) -> Response:
    target = await _unsubscribe_target(token)
    if target is None:
        return _invalid_link()
    message, group_id = target
    form = await request.form
    one_click = form.get("List-Unsubscribe") == "One-Click"
    scope = form.get("scope")
    if not one_click and scope not in ("group", "all"):
        return _page(
            "Unsubscribe",
            "<p>Nothing was changed: confirm on the unsubscribe page "
            '(a one-click request must send "List-Unsubscribe=One-Click").</p>',
            400,
        )
    if scope == "all":
        group_id = None
    result = await app_ctx().store.tracking.unsubscribe(
        message.tenant_id,
        message.id,
        message.recipient,
        suppression_key(message.recipient),
        group_id=group_id,
        data=_event_data(message),
        now=time.time(),
    )
    log.info(
        "recipient unsubscribed",
        extra={"message_id": message.id, "group_id": result.group_id, "new": result.new},
    )
    if one_click:
        return Response(
            "Unsubscribed\n", 200, headers=_NO_STORE, content_type="text/plain; charset=utf-8"
        )
    what = "these emails" if result.group_id is not None else "email from this sender"
    return _page(
        "Unsubscribed",
        f"<p>{html.escape(message.recipient)} will no longer receive {what}.</p>",
    )
