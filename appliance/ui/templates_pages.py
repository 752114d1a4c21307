"""Templates: the list (dynamic and legacy), a template with its versions, a version's editor
and its preview.

Everything shown comes from the store in the shapes of ``/v3/templates``; creating,
saving, activating, deleting and previewing go through that API from the browser
(the preview is ``POST /v3/templates/{id}/versions/{vid}/preview``, rendered in a
sandboxed iframe by ``templates.js``).
"""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, request

from appliance.api.templates import detail_json, template_json
from appliance.store.templates import Generation
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_templates", __name__, url_prefix="/admin/templates")

GENERATIONS = {
    "all": frozenset(Generation),
    "dynamic": frozenset({Generation.DYNAMIC}),
    "legacy": frozenset({Generation.LEGACY}),
}


@blueprint.get("")
@page("templates.read")
async def template_list() -> PageResult:
    shown = request.args.get("generation", "all")
    generations = GENERATIONS.get(shown, GENERATIONS["all"])
    found = await ctx().store.templates.page(session().tenant_id, generations)
    templates = [template_json(d.template, d.versions, content=False) for d in found]
    for t in templates:
        t["active_version"] = next((v for v in t["versions"] if v["active"]), None)
    templates.sort(key=lambda t: t["updated_at"], reverse=True)
    return await render(
        "templates/list.html",
        title="Templates",
        templates=templates,
        generation=shown if shown in GENERATIONS else "all",
    )


def _preview_data(template: dict[str, Any], version: dict[str, Any] | None) -> str:
    """What the preview form starts with: the version's test data, pretty-printed."""
    if template["generation"] == "legacy":
        return "{}"
    raw = (version or {}).get("test_data") or "{}"
    try:
        return json.dumps(json.loads(raw), indent=2)
    except json.JSONDecodeError:
        return raw


@blueprint.get("/<template_id>")
@page("templates.read")
async def template_page(template_id: str) -> PageResult:
    detail = await ctx().store.templates.detail(session().tenant_id, template_id)
    if detail is None:
        return await render(
            "not_found.html", title="Not found", what=f"template {template_id}"
        ), 404
    template = detail_json(detail)
    versions: list[dict[str, Any]] = template["versions"]
    wanted = request.args.get("version")
    if wanted == "new" or not versions:
        version = None
    else:
        version = next((v for v in versions if v["id"] == wanted), None) or next(
            (v for v in versions if v["active"]), versions[-1]
        )
    return await render(
        "templates/detail.html",
        title=template["name"],
        tpl=template,
        versions=versions,
        version=version,
        preview_data=_preview_data(template, version),
    )
