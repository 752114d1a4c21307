"""``/api/admin/inbound_reports``: the bounces and complaints the inbound server received.

Every report is listed, matched to a message or not, so nothing that arrived
is invisible. Who sees what:

- ``messages.read`` is needed, as for the message timeline these reports feed;
  a key sees its tenant's reports: those matched to its messages and unmatched
  ones sent to its own bounce domains.
- A report attributed to no tenant (sent to several tenants' bounce domains,
  or to a domain deleted meanwhile) may name any tenant's recipients, so only
  an operator sees it: a person signed in to the admin UI whose role holds
  ``tenants.read`` (owner, admin). No API key holds that permission.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.auth import Principal
from appliance.store.inbound_reports import KINDS, InboundReport

blueprint = Blueprint("inbound_reports", __name__, url_prefix="/api/admin/inbound_reports")

SCOPE = "messages.read"
OPERATOR_SCOPE = "tenants.read"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def summary_json(r: InboundReport) -> dict[str, Any]:
    return {
        "id": r.id,
        "received_at": r.received_at,
        "kind": r.kind,
        "matched": r.matched,
        "message_id": r.message_id,
        "matched_by": r.matched_by,
        "tenant_id": r.tenant_id,
        "recipient": r.recipient,
        "status": r.status,
        "diagnostic_code": r.diagnostic_code,
        "reporting_mta": r.reporting_mta,
        "remote_ip": r.remote_ip,
        "envelope_from": r.envelope_from,
        "envelope_to": r.envelope_to,
    }


def visible_to(caller: Principal, report: InboundReport) -> bool:
    if report.tenant_id is None:
        return caller.has(OPERATOR_SCOPE)
    return report.tenant_id == caller.tenant_id


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}", name)
    return int(raw)


def _matched_arg() -> bool | None:
    raw = request.args.get("matched", "").strip().lower()
    if raw == "":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    raise bad_request("matched must be true or false", "matched")


def _kind_arg() -> str | None:
    raw = request.args.get("kind", "").strip().lower()
    if raw == "":
        return None
    if raw not in KINDS:
        raise bad_request("kind must be one of " + ", ".join(KINDS), "kind")
    return raw


@blueprint.get("")
@tag(["Inbound reports"])
@requires(SCOPE)
async def list_reports() -> dict[str, Any]:
    """Reports, newest first; filters ``matched``, ``kind``, ``limit``, ``offset``."""
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10_000_000)
    caller = principal()
    found = await app_ctx().store.inbound_reports.list(
        limit=limit,
        offset=offset,
        matched=_matched_arg(),
        kind=_kind_arg(),
        tenant_id=caller.tenant_id,
        include_unattributed=caller.has(OPERATOR_SCOPE),
    )
    return {"reports": [summary_json(r) for r in found], "limit": limit, "offset": offset}


@blueprint.get("/<report_id>")
@tag(["Inbound reports"])
@requires(SCOPE)
async def get_report(report_id: str) -> dict[str, Any]:
    """One report: what the parser found, what it did, and the message as received."""
    store = app_ctx().store
    report = await store.inbound_reports.get(report_id)
    if report is None or not visible_to(principal(), report):
        raise ApiError(404, "inbound report not found", "id", None)
    raw = await store.inbound_reports.raw(report_id) or b""
    return {
        **summary_json(report),
        "report": report.report,
        "raw": raw.decode("utf-8", errors="replace"),
        "raw_size": len(raw),
    }
