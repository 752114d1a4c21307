"""Inbound reports: the DSNs and complaints (ARF) the inbound server received, matched to a
message or not, with the parsed report and the message as it arrived.

The list and the detail show what ``/api/admin/inbound_reports`` answers, in its shape:
the tenant's reports and, as the page needs ``relays.read`` (the operator scope), the
reports attributed to no tenant.
"""

from __future__ import annotations

import json

from quart import Blueprint, request

from appliance.api.inbound_reports import summary_json, visible_to
from appliance.store.inbound_reports import KINDS
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_inbound", __name__, url_prefix="/admin/inbound")

PAGE_SIZE = 50
KIND_LABELS = {
    "hard": "Hard bounce",
    "soft": "Soft bounce",
    "block": "Block",
    "complaint": "Complaint",
    "delayed": "Delay notice",
    "not_a_bounce": "Not a bounce",
    "forwarded": "Forwarded",
}


@blueprint.get("")
@page("relays.read")
async def report_list() -> PageResult:
    kind = request.args.get("kind", "")
    matched_arg = request.args.get("matched", "")
    raw_offset = request.args.get("offset", "0")
    offset = int(raw_offset) if raw_offset.isdigit() else 0
    current = session()
    found = await ctx().store.inbound_reports.list(
        limit=PAGE_SIZE + 1,
        offset=offset,
        matched={"true": True, "false": False}.get(matched_arg),
        kind=kind if kind in KINDS else None,
        tenant_id=current.tenant_id,
        include_unattributed=current.has("relays.read"),
    )
    return await render(
        "inbound/list.html",
        title="Inbound reports",
        reports=[summary_json(r) for r in found[:PAGE_SIZE]],
        more=len(found) > PAGE_SIZE,
        offset=offset,
        page_size=PAGE_SIZE,
        kinds=KINDS,
        kind_labels=KIND_LABELS,
        kind=kind if kind in KINDS else "",
        matched=matched_arg if matched_arg in ("true", "false") else "",
    )


@blueprint.get("/<report_id>")
@page("relays.read")
async def report_page(report_id: str) -> PageResult:
    store = ctx().store
    report = await store.inbound_reports.get(report_id)
    if report is None or not visible_to(session().principal, report):
        return await render("not_found.html", title="Not found", what=f"report {report_id}"), 404
    raw = await store.inbound_reports.raw(report_id) or b""
    return await render(
        "inbound/detail.html",
        title=f"Report {report_id}",
        report=summary_json(report),
        kind_label=KIND_LABELS.get(report.kind, report.kind),
        parsed=json.dumps(report.report, indent=2, sort_keys=True, default=str),
        raw=raw.decode("utf-8", errors="replace"),
        raw_size=len(raw),
    )
