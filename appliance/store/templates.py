"""Transactional templates and their versions, per tenant.

Ids are SendGrid's: a dynamic template is ``d-`` and 32 hex digits, a legacy
template and every version a UUID. Every query takes the tenant id, so a key
of one tenant can never see or change another tenant's templates.

A template with versions has exactly one active version, the one the send
pipeline renders (``active_version``). Writes that change which version is
active lock the template's row first (``FOR UPDATE`` on PostgreSQL; SQLite
has a single writer), so two concurrent activations cannot leave two active.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import template_versions, templates


class Generation(Enum):
    LEGACY = "legacy"  # substitution tags (``-name-``)
    DYNAMIC = "dynamic"  # Handlebars with dynamic_template_data


class Editor(Enum):
    CODE = "code"
    DESIGN = "design"


class ActiveVersionRequired(Exception):
    """Refused: the change would leave a template without an active version."""


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    tenant_id: str
    name: str
    generation: Generation
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    id: str
    template_id: str
    name: str
    subject: str
    html_content: str
    plain_content: str
    generate_plain_content: bool
    active: bool
    editor: Editor
    test_data: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class VersionContent:
    """What a version holds, as written by its author."""

    name: str
    subject: str = ""
    html_content: str = ""
    plain_content: str = ""
    generate_plain_content: bool = True
    editor: Editor = Editor.CODE
    test_data: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateDetail:
    template: Template
    versions: tuple[TemplateVersion, ...]  # oldest first


PageCursor = tuple[float, str]
"""Where a page of templates ends: the last template's ``(created_at, id)``."""


def new_template_id(generation: Generation) -> str:
    if generation is Generation.DYNAMIC:
        return f"d-{uuid.uuid4().hex}"
    return str(uuid.uuid4())


def _template(row: Any) -> Template:
    return Template(
        row.id, row.tenant_id, row.name, Generation(row.generation), row.created_at, row.updated_at
    )


def _version(row: Any) -> TemplateVersion:
    return TemplateVersion(
        row.id,
        row.template_id,
        row.name,
        row.subject,
        row.html_content,
        row.plain_content,
        bool(row.generate_plain_content),
        row.active == 1,
        Editor(row.editor),
        row.test_data,
        row.created_at,
        row.updated_at,
    )


def _content_values(content: VersionContent) -> dict[str, object]:
    return {
        "name": content.name,
        "subject": content.subject,
        "html_content": content.html_content,
        "plain_content": content.plain_content,
        "generate_plain_content": content.generate_plain_content,
        "editor": content.editor.value,
        "test_data": content.test_data,
    }


def _content_of(v: TemplateVersion) -> VersionContent:
    return VersionContent(
        v.name,
        v.subject,
        v.html_content,
        v.plain_content,
        v.generate_plain_content,
        v.editor,
        v.test_data,
    )


def _insert_version(
    c: sa.Connection, template_id: str, content: VersionContent, *, active: bool, now: float
) -> TemplateVersion:
    version_id = str(uuid.uuid4())
    c.execute(
        template_versions.insert().values(
            id=version_id,
            template_id=template_id,
            active=1 if active else 0,
            created_at=now,
            updated_at=now,
            **_content_values(content),
        )
    )
    return TemplateVersion(
        version_id,
        template_id,
        content.name,
        content.subject,
        content.html_content,
        content.plain_content,
        content.generate_plain_content,
        active,
        content.editor,
        content.test_data,
        now,
        now,
    )


def _find_template(c: sa.Connection, tenant_id: str, template_id: str) -> Template | None:
    query = sa.select(templates).where(
        templates.c.id == template_id, templates.c.tenant_id == tenant_id
    )
    row = c.execute(query).first()
    return _template(row) if row else None


def _lock_template(c: sa.Connection, tenant_id: str, template_id: str) -> Template | None:
    """The template, its row locked until the transaction ends (serialises activations)."""
    row = c.execute(
        sa.select(templates)
        .where(templates.c.id == template_id, templates.c.tenant_id == tenant_id)
        .with_for_update()
    ).first()
    return _template(row) if row else None


def _insert_template(c: sa.Connection, t: Template) -> None:
    c.execute(
        templates.insert().values(
            id=t.id,
            tenant_id=t.tenant_id,
            name=t.name,
            generation=t.generation.value,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )
    )


def _versions_of(c: sa.Connection, template_ids: Sequence[str]) -> dict[str, list[TemplateVersion]]:
    out: dict[str, list[TemplateVersion]] = {t: [] for t in template_ids}
    if not template_ids:
        return out
    rows = c.execute(
        sa.select(template_versions)
        .where(template_versions.c.template_id.in_(template_ids))
        .order_by(template_versions.c.created_at, template_versions.c.id)
    ).all()
    for row in rows:
        out[row.template_id].append(_version(row))
    return out


def _get_version(c: sa.Connection, template_id: str, version_id: str) -> TemplateVersion | None:
    row = c.execute(
        sa.select(template_versions).where(
            template_versions.c.id == version_id, template_versions.c.template_id == template_id
        )
    ).first()
    return _version(row) if row else None


def _make_only_active(c: sa.Connection, template_id: str, version_id: str) -> None:
    c.execute(
        template_versions.update()
        .where(template_versions.c.template_id == template_id)
        .values(active=sa.case((template_versions.c.id == version_id, 1), else_=0))
    )


def _touch(c: sa.Connection, template_id: str, now: float) -> None:
    c.execute(templates.update().where(templates.c.id == template_id).values(updated_at=now))


def _generations_clause(generations: frozenset[Generation]) -> sa.ColumnElement[bool]:
    return templates.c.generation.in_(sorted(g.value for g in generations))


class Templates:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------ templates

    async def create(self, tenant_id: str, name: str, generation: Generation) -> Template:
        now = time.time()
        template = Template(new_template_id(generation), tenant_id, name, generation, now, now)
        await self._db.write(lambda c: _insert_template(c, template))
        return template

    async def get(self, tenant_id: str, template_id: str) -> Template | None:
        return await self._db.read(lambda c: _find_template(c, tenant_id, template_id))

    async def detail(self, tenant_id: str, template_id: str) -> TemplateDetail | None:
        """The template with all its versions, oldest first."""

        def fn(c: sa.Connection) -> TemplateDetail | None:
            template = _find_template(c, tenant_id, template_id)
            if template is None:
                return None
            return TemplateDetail(template, tuple(_versions_of(c, [template_id])[template_id]))

        return await self._db.read(fn)

    async def page(
        self,
        tenant_id: str,
        generations: frozenset[Generation],
        *,
        limit: int | None = None,
        after: PageCursor | None = None,
    ) -> list[TemplateDetail]:
        """Templates oldest first, each with its versions; ``after`` continues a page."""

        def fn(c: sa.Connection) -> list[TemplateDetail]:
            query = (
                sa.select(templates)
                .where(templates.c.tenant_id == tenant_id, _generations_clause(generations))
                .order_by(templates.c.created_at, templates.c.id)
            )
            if after is not None:
                created_at, last_id = after
                query = query.where(
                    sa.or_(
                        templates.c.created_at > created_at,
                        sa.and_(templates.c.created_at == created_at, templates.c.id > last_id),
                    )
                )
            if limit is not None:
                query = query.limit(limit)
            found = [_template(r) for r in c.execute(query).all()]
            versions = _versions_of(c, [t.id for t in found])
            return [TemplateDetail(t, tuple(versions[t.id])) for t in found]

        return await self._db.read(fn)

    async def count(self, tenant_id: str, generations: frozenset[Generation]) -> int:
        def fn(c: sa.Connection) -> int:
            query = sa.select(sa.func.count()).where(
                templates.c.tenant_id == tenant_id, _generations_clause(generations)
            )
            return int(c.execute(query).scalar_one())

        return await self._db.read(fn)

    async def rename(self, tenant_id: str, template_id: str, name: str) -> TemplateDetail | None:
        def fn(c: sa.Connection) -> TemplateDetail | None:
            result = c.execute(
                templates.update()
                .where(templates.c.id == template_id, templates.c.tenant_id == tenant_id)
                .values(name=name, updated_at=time.time())
            )
            if result.rowcount != 1:
                return None
            template = _find_template(c, tenant_id, template_id)
            assert template is not None
            return TemplateDetail(template, tuple(_versions_of(c, [template_id])[template_id]))

        return await self._db.write(fn)

    async def duplicate(self, tenant_id: str, template_id: str, name: str) -> TemplateDetail | None:
        """A new template of the same generation with copies of every version."""

        def fn(c: sa.Connection) -> TemplateDetail | None:
            original = _lock_template(c, tenant_id, template_id)
            if original is None:
                return None
            now = time.time()
            copy = Template(
                new_template_id(original.generation), tenant_id, name, original.generation, now, now
            )
            _insert_template(c, copy)
            copies = [
                _insert_version(c, copy.id, _content_of(v), active=v.active, now=now)
                for v in _versions_of(c, [template_id])[template_id]
            ]
            return TemplateDetail(copy, tuple(copies))

        return await self._db.write(fn)

    async def delete(self, tenant_id: str, template_id: str) -> bool:
        def fn(c: sa.Connection) -> bool:
            if _lock_template(c, tenant_id, template_id) is None:
                return False
            c.execute(
                template_versions.delete().where(template_versions.c.template_id == template_id)
            )
            c.execute(templates.delete().where(templates.c.id == template_id))
            return True

        return await self._db.write(fn)

    # ------------------------------------------------------------ versions

    async def add_version(
        self, tenant_id: str, template_id: str, content: VersionContent, *, active: bool
    ) -> TemplateVersion | None:
        """Add a version; it becomes the active one if asked or if none is active yet."""

        def fn(c: sa.Connection) -> TemplateVersion | None:
            if _lock_template(c, tenant_id, template_id) is None:
                return None
            has_active = c.execute(
                sa.select(template_versions.c.id)
                .where(
                    template_versions.c.template_id == template_id,
                    template_versions.c.active == 1,
                )
                .limit(1)
            ).first()
            make_active = active or has_active is None
            now = time.time()
            if make_active:
                c.execute(
                    template_versions.update()
                    .where(template_versions.c.template_id == template_id)
                    .values(active=0)
                )
            version = _insert_version(c, template_id, content, active=make_active, now=now)
            _touch(c, template_id, now)
            return version

        return await self._db.write(fn)

    async def get_version(
        self, tenant_id: str, template_id: str, version_id: str
    ) -> tuple[Template, TemplateVersion] | None:
        def fn(c: sa.Connection) -> tuple[Template, TemplateVersion] | None:
            template = _find_template(c, tenant_id, template_id)
            version = _get_version(c, template_id, version_id) if template else None
            return (template, version) if template and version else None

        return await self._db.read(fn)

    async def update_version(
        self,
        tenant_id: str,
        template_id: str,
        version_id: str,
        changes: dict[str, object],
        *,
        active: bool | None = None,
    ) -> TemplateVersion | None:
        """Change some of a version's fields (names as in ``VersionContent``).

        ``active=True`` makes it the template's active version; ``active=False``
        on the active version raises ``ActiveVersionRequired`` (activate another
        version instead).
        """
        unknown = set(changes) - set(VersionContent.__dataclass_fields__)
        if unknown:
            raise ValueError(f"not version fields: {sorted(unknown)}")
        values = {k: (v.value if isinstance(v, Editor) else v) for k, v in changes.items()}

        def fn(c: sa.Connection) -> TemplateVersion | None:
            if _lock_template(c, tenant_id, template_id) is None:
                return None
            current = _get_version(c, template_id, version_id)
            if current is None:
                return None
            if active is False and current.active:
                raise ActiveVersionRequired(
                    "a template's active version cannot be deactivated: activate another version"
                )
            now = time.time()
            c.execute(
                template_versions.update()
                .where(template_versions.c.id == version_id)
                .values(updated_at=now, **values)
            )
            if active and not current.active:
                _make_only_active(c, template_id, version_id)
            _touch(c, template_id, now)
            return _get_version(c, template_id, version_id)

        return await self._db.write(fn)

    async def activate_version(
        self, tenant_id: str, template_id: str, version_id: str
    ) -> TemplateVersion | None:
        def fn(c: sa.Connection) -> TemplateVersion | None:
            if _lock_template(c, tenant_id, template_id) is None:
                return None
            if _get_version(c, template_id, version_id) is None:
                return None
            _make_only_active(c, template_id, version_id)
            now = time.time()
            c.execute(
                template_versions.update()
                .where(template_versions.c.id == version_id)
                .values(updated_at=now)
            )
            _touch(c, template_id, now)
            return _get_version(c, template_id, version_id)

        return await self._db.write(fn)

    async def delete_version(self, tenant_id: str, template_id: str, version_id: str) -> bool:
        """Delete a version; deleting the active one activates the newest remaining one."""

        def fn(c: sa.Connection) -> bool:
            if _lock_template(c, tenant_id, template_id) is None:
                return False
            version = _get_version(c, template_id, version_id)
            if version is None:
                return False
            c.execute(template_versions.delete().where(template_versions.c.id == version_id))
            if version.active:
                successor = c.execute(
                    sa.select(template_versions.c.id)
                    .where(template_versions.c.template_id == template_id)
                    .order_by(
                        template_versions.c.updated_at.desc(),
                        template_versions.c.created_at.desc(),
                        template_versions.c.id.desc(),
                    )
                    .limit(1)
                ).scalar()
                if successor is not None:
                    _make_only_active(c, template_id, successor)
            _touch(c, template_id, time.time())
            return True

        return await self._db.write(fn)

    async def active_version(
        self, tenant_id: str, template_id: str
    ) -> tuple[Template, TemplateVersion] | None:
        """The template and the version a send renders; None if missing or without versions."""

        def fn(c: sa.Connection) -> tuple[Template, TemplateVersion] | None:
            template = _find_template(c, tenant_id, template_id)
            if template is None:
                return None
            row = c.execute(
                sa.select(template_versions)
                .where(
                    template_versions.c.template_id == template_id,
                    template_versions.c.active == 1,
                )
                .order_by(template_versions.c.updated_at.desc(), template_versions.c.id)
                .limit(1)
            ).first()
            return (template, _version(row)) if row else None

        return await self._db.read(fn)
