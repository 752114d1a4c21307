"""SendGrid's error body, ``{"errors":[{"message","field","help"}]}``, for every error.

Handlers raise ``ApiError``; the app turns it, and every other error
(unknown path, wrong method, malformed JSON, an unexpected crash), into that
shape, so a SendGrid client always finds ``errors[].message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quart import Response, jsonify

HELP_BASE = "https://docs.sendgrid.com/api-reference"


@dataclass(frozen=True, slots=True)
class FieldError:
    message: str
    field: str | None = None
    help: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field, "help": self.help}


class ApiError(Exception):
    """An error answer: status code and one or more field errors."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        help: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or [FieldError(message, field, help)]
        self.headers = headers or {}


def error_response(
    status: int, errors: list[FieldError], headers: dict[str, str] | None = None
) -> Response:
    response = jsonify({"errors": [e.as_dict() for e in errors]})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def bad_request(message: str, field: str | None = None, help: str | None = None) -> ApiError:
    return ApiError(400, message, field, help)


def not_found(what: str = "not found") -> ApiError:
    return ApiError(404, what)


def missing_scope(scope: str) -> ApiError:
    return ApiError(
        403,
        f"Missing required scope: {scope}",
        None,
        "Create an API key with this scope, or add it with PUT /v3/api_keys/{api_key_id}",
    )
