"""Reading JSON bodies with SendGrid-style errors instead of framework ones."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import trio
from pydantic import BaseModel, ValidationError
from quart import request
from quart_schema import document_request
from werkzeug.exceptions import RequestEntityTooLarge

from appliance.api.errors import ApiError, FieldError, bad_request
from appliance.domain.json_text import NOT_UNICODE, loads_utf8, lone_surrogate_field

DRAIN_SECONDS = 30.0


async def _discard_body() -> None:
    """Read and drop an oversize body before answering 413.

    A client still sending its body when the server answers and closes sees
    a broken pipe instead of the 413 (SendGrid's clients then report a
    connection error, not "content too large"). Bodies up to the app's
    MAX_CONTENT_LENGTH are drained, chunk by chunk, within DRAIN_SECONDS.
    """
    with trio.move_on_after(DRAIN_SECONDS):
        try:
            async for _ in request.body:
                pass
        except RequestEntityTooLarge:
            pass


async def raw_body(*, max_bytes: int) -> bytes:
    """The request body as bytes, or 413 in SendGrid's shape when it exceeds ``max_bytes``."""
    too_large = ApiError(413, "content too large", None, f"the limit is {max_bytes} bytes")
    length = request.content_length
    if length is not None and length > max_bytes:
        await _discard_body()
        raise too_large
    raw = await request.get_data(as_text=False, parse_form_data=False)
    assert isinstance(raw, bytes)
    if len(raw) > max_bytes:
        raise too_large
    return raw


async def json_object(*, max_bytes: int = 1_000_000, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = await raw_body(max_bytes=max_bytes)
    if not raw.strip():
        if required:
            raise bad_request("request body is required: send a JSON object", None)
        return {}
    try:
        body = loads_utf8(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(
            f"Bad Request: the body is not valid JSON ({exc})",
            None,
            "send a JSON object with Content-Type: application/json",
        ) from None
    if not isinstance(body, dict):
        raise bad_request("Bad Request: the body must be a JSON object", None)
    field = lone_surrogate_field(body)
    if field is not None:
        raise bad_request(NOT_UNICODE, field or None)
    return body


def _schema_errors(error: ValidationError) -> list[FieldError]:
    out = []
    for item in error.errors():
        field = ".".join(str(p) for p in item.get("loc", ())) or None
        message = _PYDANTIC_MESSAGES.get(item.get("type", ""), item.get("msg", "invalid value"))
        out.append(FieldError(f"{field} {message}" if field else message, field))
    return out


_PYDANTIC_MESSAGES = {
    "missing": "missing required argument",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "bool_type": "must be a boolean",
    "int_type": "must be an integer",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "extra_forbidden": "is not a recognised field",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "string_too_long": "is too long",
}

M = TypeVar("M", bound=BaseModel)
P = ParamSpec("P")
R = TypeVar("R")


def json_body(
    model: type[M], *, max_bytes: int = 1_000_000
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Validate the JSON body against ``model`` and pass it as ``data=``.

    Unlike quart-schema's ``validate_request`` it accepts a JSON body whatever
    the Content-Type (curl's ``-d`` sends form encoding), and answers in
    SendGrid's error shape. The model still documents the route in OpenAPI.
    """

    def decorate(handler: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> R:
            raw = await json_object(max_bytes=max_bytes)
            try:
                data = model.model_validate(raw)
            except ValidationError as exc:
                raise ApiError(400, "", errors=_schema_errors(exc)) from None
            return await handler(*args, data=data, **kwargs)

        return document_request(model)(wrapper)

    return decorate
