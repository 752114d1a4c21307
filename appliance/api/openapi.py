"""The OpenAPI document's responses: what every operation can answer, in SendGrid's error shape.

quart-schema documents request bodies from the models but no responses
unless a route declares them, which left every operation of ``/openapi.json``
with ``"responses": {}``: a client (or schemathesis) could not tell a
documented 404 from an accident. ``PostyardOpenAPI`` adds to each operation

- a ``2XX`` success (and ``3XX`` for the public tracking links, which redirect)
  when the route declares none; the tracking links' errors are HTML pages;
- the error answers it can give, each with the ``Errors`` schema
  (``{"errors":[{"message","field","help"}]}``, ``api/errors.py``): 400, 404,
  503 and 507 everywhere; 401, 403 and 429 where an API key is needed; 409
  and 413 on the methods that change something (they may take a body);
- ``security: []`` on routes that need no key (tracking, health, metrics),
  so the document does not claim a key for them.
"""

from __future__ import annotations

from typing import Any

from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing.rules import Rule

ERRORS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                    "help": {"type": ["string", "null"]},
                },
            },
        }
    },
}

_ERROR_TEXT = {
    400: "The request is malformed or a field is invalid (the field is named)",
    401: "No API key, or an unknown or revoked one",
    403: "The key lacks the scope named in the message, or its tenant is suspended",
    404: "No such object for this tenant",
    409: "The change conflicts with an existing object",
    413: "The body is larger than this endpoint takes",
    429: "The key is over its rate limit (see the X-RateLimit-* headers)",
    503: "The appliance cannot take this now (queue full, store unavailable)",
    507: "The store is out of space",
}
ADMIN_UI_PREFIX = "/admin/"  # the admin UI's HTML pages and static files
_EVERYWHERE = (400, 404, 503, 507)
_WITH_KEY = (401, 403, 429)
_WITH_BODY = (409, 413)


def _error(status: int, *, html: bool = False) -> dict[str, Any]:
    if html:  # the tracking links answer a person's browser with a page
        return {"description": _ERROR_TEXT[status], "content": {"text/html": {}}}
    return {
        "description": _ERROR_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
    }


def needs_key(handler: Any) -> bool:
    """Whether the route authenticates (it went through ``authz.requires``)."""
    return hasattr(handler, "_postyard_scope")


class PostyardOpenAPI(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        document = super().schema()
        document["components"]["schemas"]["Errors"] = ERRORS_SCHEMA
        return document

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        if rule.rule.startswith(ADMIN_UI_PREFIX):  # browser pages, not API operations
            return {}, {}
        paths, components = super().build_paths(rule)
        handler = self._app.view_functions[rule.endpoint]
        keyed = needs_key(handler)
        for operations in paths.values():
            for method, operation in operations.items():
                operations[method] = self._with_responses(
                    operation, keyed=keyed, rule=rule, method=method
                )
        return paths, components

    def _with_responses(
        self, operation: dict[str, Any], *, keyed: bool, rule: Rule, method: str
    ) -> dict[str, Any]:
        operation = dict(operation)
        responses = dict(operation.get("responses") or {})
        if not any(str(code).startswith("2") for code in responses):
            responses["2XX"] = {"description": "Success"}
        statuses = list(_EVERYWHERE)
        tracking = rule.rule.startswith("/t/")
        if keyed:
            statuses += _WITH_KEY
        else:
            operation["security"] = []
            if tracking:
                responses["3XX"] = {"description": "Redirect to the link's target"}
        if "requestBody" in operation or method in ("post", "put", "patch", "delete"):
            statuses += _WITH_BODY
        for status in sorted(statuses):
            responses.setdefault(str(status), _error(status, html=tracking))
        operation["responses"] = responses
        return operation
