"""The templates repository on both engines (SQLite file and a fresh PostgreSQL database)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
import trio

from appliance.store.schema import template_versions
from appliance.store.store import Store
from appliance.store.templates import (
    ActiveVersionRequired,
    Editor,
    Generation,
    TemplateVersion,
    VersionContent,
)

BOTH = frozenset(Generation)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _active_ids(versions: tuple[TemplateVersion, ...]) -> list[str]:
    return [v.id for v in versions if v.active]


async def test_ids_follow_sendgrid_and_generations_filter_lists(store: Store) -> None:
    tenant = await store.tenants.create("A")
    dynamic = await store.templates.create(tenant.id, "welcome", Generation.DYNAMIC)
    legacy = await store.templates.create(tenant.id, "old", Generation.LEGACY)
    assert re.fullmatch(r"d-[0-9a-f]{32}", dynamic.id)
    assert UUID_RE.match(legacy.id)

    assert await store.templates.get(tenant.id, dynamic.id) == dynamic
    detail = await store.templates.detail(tenant.id, dynamic.id)
    assert detail is not None and detail.template == dynamic and detail.versions == ()

    only_dynamic = await store.templates.page(tenant.id, frozenset({Generation.DYNAMIC}))
    assert [d.template.id for d in only_dynamic] == [dynamic.id]
    assert [d.template.id for d in await store.templates.page(tenant.id, BOTH)] == [
        dynamic.id,
        legacy.id,
    ]
    assert await store.templates.count(tenant.id, BOTH) == 2
    assert await store.templates.count(tenant.id, frozenset({Generation.LEGACY})) == 1


async def test_pages_continue_after_a_cursor_without_gaps_or_repeats(store: Store) -> None:
    tenant = await store.tenants.create("A")
    made = [await store.templates.create(tenant.id, f"t{i}", Generation.DYNAMIC) for i in range(5)]
    seen: list[str] = []
    after = None
    while True:
        page = await store.templates.page(tenant.id, BOTH, limit=2, after=after)
        if not page:
            break
        seen += [d.template.id for d in page]
        last = page[-1].template
        after = (last.created_at, last.id)
    assert seen == [t.id for t in made]


async def test_first_version_is_active_and_activation_keeps_exactly_one(store: Store) -> None:
    tenant = await store.tenants.create("A")
    template = await store.templates.create(tenant.id, "t", Generation.DYNAMIC)
    first = await store.templates.add_version(
        tenant.id, template.id, VersionContent("v1", "Hi {{name}}", "<p>1</p>"), active=False
    )
    assert first is not None and first.active, "the first version is active even if not asked"
    assert UUID_RE.match(first.id)
    second = await store.templates.add_version(
        tenant.id, template.id, VersionContent("v2", editor=Editor.DESIGN), active=False
    )
    assert second is not None and not second.active
    third = await store.templates.add_version(
        tenant.id, template.id, VersionContent("v3"), active=True
    )
    assert third is not None and third.active
    detail = await store.templates.detail(tenant.id, template.id)
    assert detail is not None and _active_ids(detail.versions) == [third.id]
    assert [v.id for v in detail.versions] == [first.id, second.id, third.id]

    activated = await store.templates.activate_version(tenant.id, template.id, second.id)
    assert activated is not None and activated.active and activated.editor is Editor.DESIGN
    found = await store.templates.active_version(tenant.id, template.id)
    assert found is not None
    assert found[0].id == template.id and found[1].id == second.id

    updated = await store.templates.update_version(
        tenant.id, template.id, first.id, {"subject": "New {{x}}"}, active=True
    )
    assert updated is not None and updated.active and updated.subject == "New {{x}}"
    assert updated.html_content == "<p>1</p>", "fields not changed are kept"
    detail = await store.templates.detail(tenant.id, template.id)
    assert detail is not None and _active_ids(detail.versions) == [first.id]

    with pytest.raises(ActiveVersionRequired):
        await store.templates.update_version(tenant.id, template.id, first.id, {}, active=False)
    still = await store.templates.active_version(tenant.id, template.id)
    assert still is not None and still[1].id == first.id


async def test_deleting_the_active_version_activates_the_newest_remaining(store: Store) -> None:
    tenant = await store.tenants.create("A")
    template = await store.templates.create(tenant.id, "t", Generation.DYNAMIC)
    v1 = await store.templates.add_version(tenant.id, template.id, VersionContent("1"), active=True)
    v2 = await store.templates.add_version(tenant.id, template.id, VersionContent("2"), active=True)
    assert v1 is not None and v2 is not None
    assert await store.templates.delete_version(tenant.id, template.id, v2.id)
    found = await store.templates.active_version(tenant.id, template.id)
    assert found is not None and found[1].id == v1.id
    assert await store.templates.delete_version(tenant.id, template.id, v1.id)
    assert await store.templates.active_version(tenant.id, template.id) is None
    assert not await store.templates.delete_version(tenant.id, template.id, v1.id)


async def test_templates_are_isolated_per_tenant(store: Store) -> None:
    a = await store.tenants.create("A")
    b = await store.tenants.create("B")
    template = await store.templates.create(a.id, "mine", Generation.DYNAMIC)
    version = await store.templates.add_version(a.id, template.id, VersionContent("v"), active=True)
    assert version is not None
    t, v = template.id, version.id

    assert await store.templates.get(b.id, t) is None
    assert await store.templates.detail(b.id, t) is None
    assert await store.templates.page(b.id, BOTH) == []
    assert await store.templates.count(b.id, BOTH) == 0
    assert await store.templates.rename(b.id, t, "stolen") is None
    assert await store.templates.duplicate(b.id, t, "stolen") is None
    assert await store.templates.add_version(b.id, t, VersionContent("x"), active=True) is None
    assert await store.templates.get_version(b.id, t, v) is None
    assert await store.templates.update_version(b.id, t, v, {"name": "x"}) is None
    assert await store.templates.activate_version(b.id, t, v) is None
    assert await store.templates.active_version(b.id, t) is None
    assert not await store.templates.delete_version(b.id, t, v)
    assert not await store.templates.delete(b.id, t)

    detail = await store.templates.detail(a.id, t)
    assert detail is not None and detail.template.name == "mine"
    assert [x.name for x in detail.versions] == ["v"]


async def test_a_version_of_another_template_is_not_found_through_this_one(store: Store) -> None:
    tenant = await store.tenants.create("A")
    one = await store.templates.create(tenant.id, "one", Generation.DYNAMIC)
    two = await store.templates.create(tenant.id, "two", Generation.DYNAMIC)
    v = await store.templates.add_version(tenant.id, one.id, VersionContent("v"), active=True)
    assert v is not None
    assert await store.templates.get_version(tenant.id, two.id, v.id) is None
    assert await store.templates.activate_version(tenant.id, two.id, v.id) is None
    assert not await store.templates.delete_version(tenant.id, two.id, v.id)


async def test_rename_duplicate_and_delete_with_versions(store: Store) -> None:
    tenant = await store.tenants.create("A")
    template = await store.templates.create(tenant.id, "t", Generation.LEGACY)
    content = VersionContent("v", "<%subject%>", "<%body%>", "text", False, Editor.CODE, '{"a":1}')
    v1 = await store.templates.add_version(tenant.id, template.id, content, active=True)
    await store.templates.add_version(tenant.id, template.id, VersionContent("w"), active=False)
    assert v1 is not None

    renamed = await store.templates.rename(tenant.id, template.id, "renamed")
    assert renamed is not None and renamed.template.name == "renamed"
    assert renamed.template.updated_at >= template.updated_at

    copy = await store.templates.duplicate(tenant.id, template.id, "copy")
    assert copy is not None and copy.template.id != template.id
    assert copy.template.generation is Generation.LEGACY and copy.template.name == "copy"
    assert [(v.name, v.active, v.test_data) for v in copy.versions] == [
        ("v", True, '{"a":1}'),
        ("w", False, None),
    ]
    assert {v.template_id for v in copy.versions} == {copy.template.id}

    assert await store.templates.delete(tenant.id, template.id)
    assert await store.templates.get(tenant.id, template.id) is None
    left = await store.db.read(
        lambda c: c.execute(
            sa.select(sa.func.count()).where(template_versions.c.template_id == template.id)
        ).scalar_one()
    )
    assert left == 0
    assert await store.templates.detail(tenant.id, copy.template.id) is not None


async def test_concurrent_activations_leave_exactly_one_active(store: Store) -> None:
    tenant = await store.tenants.create("A")
    template = await store.templates.create(tenant.id, "t", Generation.DYNAMIC)
    ids = []
    for i in range(6):
        v = await store.templates.add_version(
            tenant.id, template.id, VersionContent(f"v{i}"), active=False
        )
        assert v is not None
        ids.append(v.id)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            for version_id in ids:
                nursery.start_soon(
                    store.templates.activate_version, tenant.id, template.id, version_id
                )
    detail = await store.templates.detail(tenant.id, template.id)
    assert detail is not None and len(_active_ids(detail.versions)) == 1
