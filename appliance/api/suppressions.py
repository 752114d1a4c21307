"""SendGrid's suppression endpoints: ``/v3/suppression/*`` and ``/v3/asm/suppressions/global``.

Each of the five lists (bounces, blocks, spam_reports, invalid_emails,
unsubscribes) answers, as SendGrid does:

- ``GET /v3/suppression/<list>``: entries newest first, filtered by
  ``start_time`` / ``end_time`` (Unix seconds, inclusive), ``email`` (a prefix;
  ``%`` matches any run of characters) and paged by ``limit`` (1-500, default
  500) and ``offset``;
- ``GET /v3/suppression/<list>/<email>``: ``[entry]``, or ``[]`` when absent;
- ``DELETE /v3/suppression/<list>/<email>``: 204, or 404 when absent;
- ``DELETE /v3/suppression/<list>`` with ``{"delete_all": true}`` or
  ``{"emails": [...]}``: 204 (addresses not listed are skipped).

SendGrid itself has only the list for ``unsubscribes``; the other routes are
given to it too, so every list is managed the same way. Global unsubscribes
are also reached through ``/v3/asm/suppressions/global`` (POST adds, GET
answers ``{"recipient_email"}`` or ``{}``, DELETE always 204), all stored in
the ``unsubscribes`` list.

Addresses in paths may carry ``@`` and ``+`` unencoded (SendGrid's clients
do not encode them); every address is compared by ``suppression_key``, the
form acceptance checks recipients with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, Response, jsonify, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, FieldError, bad_request
from appliance.api.request_body import json_body
from appliance.domain.acceptance import suppression_key
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.store.suppressions import LISTS, Suppression, SuppressionFilter

blueprint = Blueprint("suppressions", __name__, url_prefix="/v3")

MAX_LIMIT = 500
GLOBAL_LIST = "unsubscribes"
_TAGS = ["Suppressions"]
_HELP = "https://docs.sendgrid.com/api-reference/suppressions-suppressions"
_LABELS = {
    "bounces": "bounces",
    "blocks": "blocks",
    "spam_reports": "spam reports",
    "invalid_emails": "invalid emails",
    "unsubscribes": "global unsubscribes",
}


class BulkDelete(BaseModel):
    delete_all: bool = False
    emails: list[str] | None = None


class GlobalSuppressions(BaseModel):
    recipient_emails: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- shapes


def entry_json(entry: Suppression) -> dict[str, Any]:
    """One entry in SendGrid's shape for its list (``created`` in Unix seconds)."""
    out: dict[str, Any] = {"created": int(entry.created_at), "email": entry.email}
    if entry.list_name in ("bounces", "blocks"):
        out["reason"] = entry.reason or ""
        out["status"] = entry.status or ""
    elif entry.list_name == "invalid_emails":
        out["reason"] = entry.reason or ""
    elif entry.list_name == "spam_reports":
        out["ip"] = ""  # the sending address is not recorded; SendGrid requires the field
    return out


# ---------------------------------------------------------------- query


def _int_arg(name: str, *, minimum: int, maximum: int | None, what: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    value = int(text) if digits.isascii() and digits.isdigit() else None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        raise bad_request(f"{name} must be {what}; got {raw!r}", name, _HELP)
    return value


def list_filter() -> SuppressionFilter:
    """The list query of this request, checked as SendGrid documents it."""
    start = _int_arg("start_time", minimum=0, maximum=None, what="a Unix timestamp in seconds")
    end = _int_arg("end_time", minimum=0, maximum=None, what="a Unix timestamp in seconds")
    if start is not None and end is not None and end < start:
        raise bad_request(
            f"end_time ({end}) is before start_time ({start}): both are inclusive Unix times",
            "end_time",
            _HELP,
        )
    limit = _int_arg(
        "limit", minimum=1, maximum=MAX_LIMIT, what=f"an integer from 1 to {MAX_LIMIT}"
    )
    offset = _int_arg("offset", minimum=0, maximum=None, what="an integer of 0 or more")
    return SuppressionFilter(
        created_from=float(start) if start is not None else None,
        created_before=float(end + 1) if end is not None else None,
        email=request.args.get("email") or None,
        limit=MAX_LIMIT if limit is None else limit,
        offset=offset or 0,
    )


def _bulk_keys(data: BulkDelete) -> list[str] | None:
    """The keys a bulk delete names, or None for ``delete_all``."""
    emails = data.emails or []
    if data.delete_all and emails:
        raise bad_request(
            "send either delete_all or emails, not both: you can not have both",
            "delete_all",
            _HELP,
        )
    if data.delete_all:
        return None
    if not emails:
        raise bad_request(
            'nothing to delete: send {"delete_all": true} to empty the list, '
            'or {"emails": ["a@example.com", …]} to remove those addresses',
            "emails",
            _HELP,
        )
    return [suppression_key(e) for e in emails]


# ---------------------------------------------------------------- per-list routes


def _route(
    rule: str,
    method: str,
    scope: str,
    handler: Callable[..., Awaitable[Any]],
    doc: str,
) -> None:
    handler.__doc__ = doc
    view = tag(_TAGS)(requires(scope)(handler))
    blueprint.add_url_rule(rule, handler.__name__, view, methods=[method])


def _register_list(list_name: str) -> None:
    label = _LABELS[list_name]
    base = f"/suppression/{list_name}"

    async def list_entries() -> Response:
        query = list_filter()
        entries = await app_ctx().store.suppressions.page(principal().tenant_id, list_name, query)
        return jsonify([entry_json(e) for e in entries])

    async def get_entry(email: str) -> Response:
        entry = await app_ctx().store.suppressions.get(
            principal().tenant_id, list_name, suppression_key(email)
        )
        return jsonify([entry_json(entry)] if entry else [])

    async def delete_entry(email: str) -> tuple[str, int]:
        removed = await app_ctx().store.suppressions.remove(
            principal().tenant_id, list_name, suppression_key(email)
        )
        if not removed:
            raise ApiError(404, f"{email} is not on the {label} list", "email", None)
        return "", 204

    async def delete_entries(data: BulkDelete) -> tuple[str, int]:
        keys = _bulk_keys(data)
        store = app_ctx().store.suppressions
        if keys is None:
            await store.remove_all(principal().tenant_id, list_name)
        else:
            await store.remove_many(principal().tenant_id, list_name, keys)
        return "", 204

    for fn in (list_entries, get_entry, delete_entry, delete_entries):
        fn.__name__ = f"{fn.__name__}_{list_name}"
        fn.__qualname__ = fn.__name__
    _route(
        base,
        "GET",
        f"suppression.{list_name}.read",
        list_entries,
        f"List {label}, newest first. Filters: start_time, end_time, email prefix "
        f"(% is a wildcard); pages: limit (1-{MAX_LIMIT}), offset.",
    )
    _route(
        f"{base}/<path:email>",
        "GET",
        f"suppression.{list_name}.read",
        get_entry,
        f"The {label} entry of one address, as a one-element array ([] when absent).",
    )
    _route(
        f"{base}/<path:email>",
        "DELETE",
        f"suppression.{list_name}.delete",
        delete_entry,
        f"Remove one address from {label} (404 when it is not listed).",
    )
    _route(
        base,
        "DELETE",
        f"suppression.{list_name}.delete",
        json_body(BulkDelete)(delete_entries),
        f'Remove addresses from {label}: {{"emails": [...]}}, or {{"delete_all": true}}.',
    )


for _list_name in LISTS:
    _register_list(_list_name)


# ---------------------------------------------------------------- global unsubscribes (ASM)


def recipient_keys(emails: list[str], *, help_url: str) -> list[str]:
    """Suppression keys of ``recipient_emails``, or a 400 naming every bad address."""
    errors: list[FieldError] = []
    keys: list[str] = []
    for index, email in enumerate(emails):
        try:
            keys.append(parse_address(email).key)
        except InvalidAddressError as exc:
            errors.append(
                FieldError(
                    f"recipient_emails.{index} {email!r} is not a valid email address: "
                    f"{exc.detail}",
                    f"recipient_emails.{index}",
                    help_url,
                )
            )
    if errors:
        raise ApiError(400, errors[0].message, errors=errors)
    return keys


@blueprint.post("/asm/suppressions/global")
@tag(_TAGS)
@requires("asm.suppressions.global.create")
@json_body(GlobalSuppressions)
async def add_global_suppressions(data: GlobalSuppressions) -> tuple[dict[str, Any], int]:
    """Add addresses to the global unsubscribes; answers the addresses given."""
    keys = recipient_keys(data.recipient_emails, help_url=_HELP)
    await app_ctx().store.suppressions.add_many(principal().tenant_id, GLOBAL_LIST, keys)
    return {"recipient_emails": data.recipient_emails}, 201


@blueprint.get("/asm/suppressions/global/<path:email>")
@tag(_TAGS)
@requires("asm.suppressions.global.read")
async def get_global_suppression(email: str) -> dict[str, Any]:
    """``{"recipient_email": …}`` when the address is globally unsubscribed, else ``{}``."""
    entry = await app_ctx().store.suppressions.get(
        principal().tenant_id, GLOBAL_LIST, suppression_key(email)
    )
    return {"recipient_email": entry.email} if entry else {}


@blueprint.delete("/asm/suppressions/global/<path:email>")
@tag(_TAGS)
@requires("asm.suppressions.global.delete")
async def delete_global_suppression(email: str) -> tuple[str, int]:
    """Remove an address from the global unsubscribes (204 whether or not it was listed)."""
    await app_ctx().store.suppressions.remove(
        principal().tenant_id, GLOBAL_LIST, suppression_key(email)
    )
    return "", 204
