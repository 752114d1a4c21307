"""``GET /v3/events/stream``: a websocket of the caller's tenant's events, as they happen.

Authentication is the API's own: ``Authorization: Bearer <key>`` on the
upgrade request, with the ``events.stream.read`` scope. Refusals happen
before the upgrade and answer with the API's usual status and error body.
Query filters: ``event_type`` and ``message_id``, each repeatable or a
comma-separated list. Each event is one text frame with the JSON payload of
SPEC "Events". A client that falls more than ``event_stream_buffer`` events
behind is closed with code 1008 and the reason "client too slow".
"""

from __future__ import annotations

import json
from functools import partial

import trio
from hypercorn.utils import UnexpectedMessageError
from quart import Blueprint, current_app, websocket

from appliance.api.authz import session_principal
from appliance.api.errors import ApiError, missing_scope
from appliance.auth import AuthFailure
from appliance.context import AppContext
from appliance.services.event_feed import TOO_SLOW, EventFeed, EventFilter, Subscription

blueprint = Blueprint("event_stream", __name__)

SCOPE = "events.stream.read"
CLOSE_TOO_SLOW = 1008  # policy violation: the client did not keep up
CLOSE_GOING_AWAY = 1001
TOO_SLOW_REASON = "client too slow"
MAX_FILTER_VALUES = 100
CLOSE_TIMEOUT = 10.0  # seconds to get the close frame out to a client that is not reading


def _ctx() -> AppContext:
    ctx: AppContext = current_app.extensions["postyard"]
    return ctx


def event_feed() -> EventFeed:
    """This process's feed, started in the app's nursery on first use."""
    feed: EventFeed | None = current_app.extensions.get("postyard.event_feed")
    if feed is None:
        config = _ctx().config
        feed = EventFeed(
            _ctx().store,
            poll_interval=config.event_stream_poll_interval,
            buffer=config.event_stream_buffer,
        )
        current_app.extensions["postyard.event_feed"] = feed
    if not feed.running:
        current_app.nursery.start_soon(partial(feed.run, stop=_ctx().shutdown))  # type: ignore[attr-defined]
        feed.running = True
    return feed


def filter_values(values: list[str], field: str) -> frozenset[str]:
    """``["a,b", "c"]`` -> ``{"a", "b", "c"}``: repeated and comma-separated forms."""
    found = frozenset(v.strip() for raw in values for v in raw.split(",") if v.strip())
    if len(found) > MAX_FILTER_VALUES:
        raise ApiError(
            400,
            f"too many {field} values ({len(found)})",
            field,
            f"filter by at most {MAX_FILTER_VALUES} values, or open several streams",
        )
    return found


def _bearer() -> str | None:
    scheme, _, token = websocket.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@blueprint.websocket("/v3/events/stream")
async def stream() -> None:
    result = await session_principal(is_websocket=True) or await _ctx().authenticator.authenticate(
        _bearer()
    )
    if isinstance(result, AuthFailure):
        status = 403 if result is AuthFailure.TENANT_SUSPENDED else 401
        help_ = "send the API key in an 'Authorization: Bearer <key>' header of the upgrade request"
        raise ApiError(status, result.value, None, help_ if status == 401 else None)
    if not result.has(SCOPE):
        raise missing_scope(SCOPE)
    wanted = EventFilter(
        tenant_id=result.tenant_id,
        event_types=filter_values(websocket.args.getlist("event_type"), "event_type"),
        message_ids=filter_values(websocket.args.getlist("message_id"), "message_id"),
    )
    feed = event_feed()
    sub = await feed.subscribe(wanted)
    try:
        await websocket.accept()
        await _forward(sub)
    finally:
        feed.unsubscribe(sub)


async def _forward(sub: Subscription) -> None:
    shutdown = _ctx().shutdown
    async with trio.open_nursery() as nursery:

        async def close(code: int, reason: str) -> None:
            nursery.cancel_scope.cancel()
            with trio.move_on_after(CLOSE_TIMEOUT) as scope:
                scope.shield = True
                await websocket.close(code, reason)

        async def on_shutdown() -> None:
            await shutdown.wait()
            await close(CLOSE_GOING_AWAY, "server shutting down")

        async def on_drop() -> None:
            await sub.dropped.wait()
            if sub.reason == TOO_SLOW:
                await close(CLOSE_TOO_SLOW, TOO_SLOW_REASON)
            else:
                await close(CLOSE_GOING_AWAY, "event stream stopped")

        nursery.start_soon(on_shutdown)
        nursery.start_soon(on_drop)
        async for event in sub.receive:
            try:
                await websocket.send(json.dumps(event.payload(), separators=(",", ":")))
            except UnexpectedMessageError:  # closed meanwhile (by us or the client)
                return
