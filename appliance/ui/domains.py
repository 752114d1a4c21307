"""Domains: the DNS records to publish (with copy buttons) and per-record verification."""

from __future__ import annotations

from quart import Blueprint

from appliance.api.domains import all_records_json, domain_json
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_domains", __name__, url_prefix="/admin/domains")


@blueprint.get("")
@page("domains.read")
async def domain_list() -> PageResult:
    domains = await ctx().store.domains.for_tenant(session().tenant_id)
    return await render(
        "domains/list.html", title="Domains", domains=[domain_json(d) for d in domains]
    )


@blueprint.get("/<domain_id>")
@page("domains.read")
async def domain_page(domain_id: str) -> PageResult:
    domain = await ctx().store.domains.get(session().tenant_id, domain_id)
    if domain is None:
        return await render("not_found.html", title="Not found", what=f"domain {domain_id}"), 404
    checks = {
        (c["type"], c["host"], c.get("pending", False)): c
        for c in (domain.last_check or {}).get("records", [])
    }
    return await render(
        "domains/detail.html",
        title=domain.name,
        domain=domain_json(domain),
        records=all_records_json(domain),
        checks=checks,
        last_check=domain.last_check,
    )
