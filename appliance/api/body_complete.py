"""Hold a response until its request body has arrived, so the connection stays usable.

hypercorn 0.18 (HTTP/1.1) hangs a keep-alive connection when the app finishes
its answer before the client has sent the whole request body: it neither
recycles nor closes the connection, and the client's next request on it waits
forever (seen with schemathesis: a 405 or 401 answered from the headers while
the body was still on the way). Answers that do not read the body (wrong
method, unknown path, missing key) are common, so the ASGI app waits, before
starting a response, until the server has handed it the end of the body
(Quart reads every body into ``request.body`` in the background, so the wait
only covers the time the body takes to arrive), for at most ``max_wait``
seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def wait_for_request_body(app: ASGIApp, *, max_wait: float = 30.0) -> ASGIApp:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        received = trio.Event()

        async def receive_tracked() -> Message:
            message: Message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                received.set()
            return message

        async def send_after_body(message: Message) -> None:
            if message["type"] == "http.response.start" and not received.is_set():
                with trio.move_on_after(max_wait):
                    await received.wait()
            await send(message)

        await app(scope, receive_tracked, send_after_body)

    return wrapped
