"""SendGrid's unsubscribe groups: ``/v3/asm/groups`` and their suppressions.

- ``POST /v3/asm/groups`` ``{"name", "description", "is_default"}`` → 201;
- ``GET /v3/asm/groups`` (``?id=`` repeatable) → groups with their
  ``unsubscribes`` count; ``GET/PATCH/DELETE /v3/asm/groups/{id}``
  (PATCH answers 201, as SendGrid does);
- ``GET/POST /v3/asm/groups/{id}/suppressions`` (``{"recipient_emails"}``),
  ``POST …/suppressions/search``, ``DELETE …/suppressions/{email}``: a
  removal is a resubscribe and writes a ``group_resubscribe`` event.

A send request with ``asm.group_id`` drops recipients suppressed in that
group (``services.acceptance``); its unsubscribe link suppresses there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictBool
from quart import Blueprint, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body
from appliance.api.suppressions import recipient_keys
from appliance.domain.acceptance import suppression_key
from appliance.store.asm_groups import AsmGroup, DuplicateGroupName

# Group ids are BIGINT: a larger id in the path is a 404, not an overflow in the driver.
blueprint = Blueprint("asm_groups", __name__, url_prefix="/v3/asm/groups")

_TAGS = ["Unsubscribe groups"]
_HELP = "https://docs.sendgrid.com/api-reference/suppressions-unsubscribe-groups"
MAX_NAME = 30
MAX_DESCRIPTION = 100


class NewGroup(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    is_default: StrictBool = False


class GroupChanges(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    is_default: StrictBool | None = None


class RecipientEmails(BaseModel):
    recipient_emails: list[str] = Field(min_length=1)


def group_json(group: AsmGroup, *, count: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "is_default": group.is_default,
    }
    if count:
        out["unsubscribes"] = group.unsubscribes
    return out


def _no_group(group_id: int) -> ApiError:
    return ApiError(
        404,
        f"unsubscribe group {group_id} does not exist: list the groups with GET /v3/asm/groups",
        "group_id",
        _HELP,
    )


def _duplicate(exc: DuplicateGroupName) -> ApiError:
    return bad_request(str(exc), "name", _HELP)


def _keys(emails: list[str]) -> list[str]:
    return recipient_keys(emails, help_url=_HELP)


@blueprint.post("")
@tag(_TAGS)
@requires("asm.groups.create")
@json_body(NewGroup)
async def create_group(data: NewGroup) -> tuple[dict[str, Any], int]:
    """Create an unsubscribe group (a new default replaces the previous default)."""
    try:
        group = await app_ctx().store.asm_groups.create(
            principal().tenant_id,
            name=data.name,
            description=data.description,
            is_default=data.is_default,
        )
    except DuplicateGroupName as exc:
        raise _duplicate(exc) from None
    return group_json(group, count=False), 201


@blueprint.get("")
@tag(_TAGS)
@requires("asm.groups.read")
async def list_groups() -> list[dict[str, Any]]:
    """All unsubscribe groups, or those named by repeated ``id`` parameters."""
    groups = await app_ctx().store.asm_groups.for_tenant(principal().tenant_id)
    wanted = request.args.getlist("id")
    if wanted:
        ids: set[int] = set()
        for raw in wanted:
            if not raw.strip().isdigit():
                raise bad_request(f"id must be a group id (an integer); got {raw!r}", "id", _HELP)
            ids.add(int(raw))
        groups = [g for g in groups if g.id in ids]
    return [group_json(g) for g in groups]


@blueprint.get("/<int(max=9223372036854775807):group_id>")
@tag(_TAGS)
@requires("asm.groups.read")
async def get_group(group_id: int) -> dict[str, Any]:
    """One unsubscribe group with its ``unsubscribes`` count."""
    group = await app_ctx().store.asm_groups.get(principal().tenant_id, group_id)
    if group is None:
        raise _no_group(group_id)
    return group_json(group)


@blueprint.patch("/<int(max=9223372036854775807):group_id>")
@tag(_TAGS)
@requires("asm.groups.update")
@json_body(GroupChanges)
async def update_group(group_id: int, data: GroupChanges) -> tuple[dict[str, Any], int]:
    """Change name, description or is_default (SendGrid answers 201)."""
    try:
        group = await app_ctx().store.asm_groups.update(
            principal().tenant_id,
            group_id,
            name=data.name,
            description=data.description,
            is_default=data.is_default,
        )
    except DuplicateGroupName as exc:
        raise _duplicate(exc) from None
    if group is None:
        raise _no_group(group_id)
    return group_json(group, count=False), 201


@blueprint.delete("/<int(max=9223372036854775807):group_id>")
@tag(_TAGS)
@requires("asm.groups.delete")
async def delete_group(group_id: int) -> tuple[str, int]:
    """Delete a group and its suppressions (mail naming it is then sent to everyone)."""
    if not await app_ctx().store.asm_groups.delete(principal().tenant_id, group_id):
        raise _no_group(group_id)
    return "", 204


@blueprint.get("/<int(max=9223372036854775807):group_id>/suppressions")
@tag(_TAGS)
@requires("asm.groups.suppressions.read")
async def list_group_suppressions(group_id: int) -> list[str]:
    """The addresses suppressed in the group."""
    found = await app_ctx().store.asm_groups.suppressions(principal().tenant_id, group_id)
    if found is None:
        raise _no_group(group_id)
    return found


@blueprint.post("/<int(max=9223372036854775807):group_id>/suppressions")
@tag(_TAGS)
@requires("asm.groups.suppressions.create")
@json_body(RecipientEmails)
async def add_group_suppressions(
    group_id: int, data: RecipientEmails
) -> tuple[dict[str, Any], int]:
    """Suppress addresses in the group; answers the addresses given."""
    keys = _keys(data.recipient_emails)
    if not await app_ctx().store.asm_groups.add_suppressions(principal().tenant_id, group_id, keys):
        raise _no_group(group_id)
    return {"recipient_emails": data.recipient_emails}, 201


@blueprint.post("/<int(max=9223372036854775807):group_id>/suppressions/search")
@tag(_TAGS)
@requires("asm.groups.suppressions.read")
@json_body(RecipientEmails)
async def search_group_suppressions(group_id: int, data: RecipientEmails) -> list[str]:
    """Which of the given addresses are suppressed in the group."""
    store = app_ctx().store.asm_groups
    tenant_id = principal().tenant_id
    if await store.get(tenant_id, group_id) is None:
        raise _no_group(group_id)
    keys = {suppression_key(e) for e in data.recipient_emails}
    found = await store.suppressed(tenant_id, group_id, keys)
    return sorted(found)


@blueprint.delete("/<int(max=9223372036854775807):group_id>/suppressions/<path:email>")
@tag(_TAGS)
@requires("asm.groups.suppressions.delete")
async def delete_group_suppression(group_id: int, email: str) -> tuple[str, int]:
    """Resubscribe an address to the group (a ``group_resubscribe`` event)."""
    removed = await app_ctx().store.asm_groups.resubscribe(
        principal().tenant_id, group_id, suppression_key(email)
    )
    if removed is None:
        raise _no_group(group_id)
    if not removed:
        raise ApiError(404, f"{email} is not suppressed in group {group_id}", "email", _HELP)
    return "", 204
