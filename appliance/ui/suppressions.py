"""Suppressions: the five lists and the unsubscribe groups' suppressions; search, remove, add,
export as CSV.

``?list=`` names a list (``bounces`` … ``unsubscribes``) or a group (``group:<id>``);
``?email=`` is the lists' pattern (a prefix; ``%`` any run), and ``match=anywhere``
searches inside the address. Removing and adding go through the JSON API from the
browser; ``export.csv`` streams the whole (filtered) list.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, request

from appliance.api.asm_groups import group_json
from appliance.api.suppressions import entry_json
from appliance.store.store import Store
from appliance.store.suppressions import LISTS, SuppressionFilter
from appliance.ui.pages import PageResult, ctx, forbidden, page, render, session

blueprint = Blueprint("ui_suppressions", __name__, url_prefix="/admin/suppressions")

PAGE_SIZE = 50
EXPORT_CHUNK = 500
LABELS = {
    "bounces": "Bounces",
    "blocks": "Blocks",
    "spam_reports": "Spam reports",
    "invalid_emails": "Invalid emails",
    "unsubscribes": "Global unsubscribes",
}
CSV_COLUMNS = ("email", "created", "reason", "status")


@dataclass(frozen=True, slots=True)
class Chosen:
    """The list a request names: one of LISTS, or an unsubscribe group."""

    key: str  # "bounces" … or "group:<id>"
    list_name: str | None
    group_id: int | None

    @property
    def read_permission(self) -> str:
        if self.group_id is not None:
            return "asm.groups.suppressions.read"
        return f"suppression.{self.list_name}.read"


def chosen_list(raw: str | None) -> Chosen | None:
    value = (raw or "bounces").strip()
    if value in LISTS:
        return Chosen(value, value, None)
    kind, _, number = value.partition(":")
    if kind == "group" and number.isdigit():
        return Chosen(value, None, int(number))
    return None


def email_pattern() -> str | None:
    """The search box as the lists' pattern: as typed (a prefix), or anywhere in the address."""
    text = request.args.get("email", "").strip()
    if not text:
        return None
    return f"%{text}" if request.args.get("match") == "anywhere" else text


def _offset() -> int:
    raw = request.args.get("offset", "0")
    return int(raw) if raw.isdigit() else 0


async def _rows(
    store: Store, tenant_id: str, chosen: Chosen, pattern: str | None, *, limit: int, offset: int
) -> list[dict[str, Any]] | None:
    """Entries in the API's shape for their list (groups: email and created), or None when
    the group does not exist."""
    if chosen.group_id is not None:
        found = await store.asm_groups.suppression_page(
            tenant_id, chosen.group_id, email=pattern, limit=limit, offset=offset
        )
        if found is None:
            return None
        return [{"email": email, "created": int(created)} for email, created in found]
    assert chosen.list_name is not None
    query = SuppressionFilter(email=pattern, limit=limit, offset=offset)
    entries = await store.suppressions.page(tenant_id, chosen.list_name, query)
    return [entry_json(e) for e in entries]


async def _not_found(what: str) -> tuple[str, int]:
    return await render("not_found.html", title="Not found", what=what), 404


@blueprint.get("")
@page("suppression.read")
async def suppression_list() -> PageResult:
    chosen = chosen_list(request.args.get("list"))
    if chosen is None:
        return await _not_found("that suppression list")
    if not session().has(chosen.read_permission):
        return await forbidden(chosen.read_permission)
    groups = []
    if session().has("asm.groups.read"):
        groups = [
            group_json(g) for g in await ctx().store.asm_groups.for_tenant(session().tenant_id)
        ]
    offset = _offset()
    pattern = email_pattern()
    rows = await _rows(
        ctx().store, session().tenant_id, chosen, pattern, limit=PAGE_SIZE + 1, offset=offset
    )
    if rows is None:
        return await _not_found(f"unsubscribe group {chosen.group_id}")
    group = next((g for g in groups if g["id"] == chosen.group_id), None)
    if chosen.list_name is not None:
        heading = LABELS[chosen.list_name]
    else:
        heading = f"Group: {group['name'] if group else chosen.group_id}"
    return await render(
        "suppressions/list.html",
        title="Suppressions",
        heading=heading,
        chosen=chosen,
        labels=LABELS,
        groups=groups,
        group=group,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        offset=offset,
        page_size=PAGE_SIZE,
        email=request.args.get("email", ""),
        match=request.args.get("match", "prefix"),
    )


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(values: list[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_cell(v) for v in values])
    return out.getvalue()


def _iso(created: int) -> str:
    return dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@blueprint.get("/export.csv")
@page("suppression.read")
async def export_csv() -> PageResult:
    chosen = chosen_list(request.args.get("list"))
    if chosen is None:
        return await _not_found("that suppression list")
    if not session().has(chosen.read_permission):
        return await forbidden(chosen.read_permission)
    pattern = email_pattern()
    store, tenant_id = ctx().store, session().tenant_id  # the generator runs after the request
    first = await _rows(store, tenant_id, chosen, pattern, limit=EXPORT_CHUNK, offset=0)
    if first is None:
        return await _not_found(f"unsubscribe group {chosen.group_id}")

    async def lines() -> AsyncIterator[bytes]:
        yield csv_line(list(CSV_COLUMNS)).encode()
        chunk: list[dict[str, Any]] | None = first
        offset = 0
        while chunk:
            for row in chunk:
                values: list[object] = [
                    row["email"],
                    _iso(row["created"]),
                    row.get("reason"),
                    row.get("status"),
                ]
                yield csv_line(values).encode()
            if len(chunk) < EXPORT_CHUNK:
                break
            offset += EXPORT_CHUNK
            chunk = await _rows(
                store, tenant_id, chosen, pattern, limit=EXPORT_CHUNK, offset=offset
            )

    name = chosen.key.replace(":", "-")
    return Response(
        lines(),
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="suppressions-{name}.csv"',
            "Cache-Control": "no-store",
        },
    )
