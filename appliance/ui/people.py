"""Tenants, users and roles: who may sign in, with which permissions, over which tenant."""

from __future__ import annotations

from quart import Blueprint

from appliance.api.roles import role_json
from appliance.api.tenant_admin import tenant_json
from appliance.api.users import user_json
from appliance.domain.roles import ALL_PERMISSIONS, permission_groups
from appliance.ui.pages import PageResult, ctx, page, render, session

blueprint = Blueprint("ui_people", __name__, url_prefix="/admin")


@blueprint.get("/tenants")
@page("tenants.read")
async def tenants() -> PageResult:
    store = ctx().store
    rows = []
    for tenant in await store.tenants.all():
        counts = await store.messages.count_by_status(tenant.id)
        rows.append({**tenant_json(tenant), "messages": sum(counts.values())})
    return await render("admin/tenants.html", title="Tenants", tenants=rows)


@blueprint.get("/users")
@page("users.read")
async def users() -> PageResult:
    store = ctx().store
    roles = await store.roles.list()
    held = session().permissions
    return await render(
        "admin/users.html",
        title="Users",
        users=[user_json(u) for u in await store.users.list()],
        roles=[r for r in roles if r.permissions <= held],
        all_tenants={t.id: t.name for t in await store.tenants.all()},
        me=session().user.id,
    )


@blueprint.get("/roles")
@page("roles.read")
async def roles() -> PageResult:
    held = session().permissions
    return await render(
        "admin/roles.html",
        title="Roles",
        roles=[role_json(r) for r in await ctx().store.roles.list()],
        groups=permission_groups(ALL_PERMISSIONS & held),
    )
