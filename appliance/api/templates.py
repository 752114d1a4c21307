"""``/v3/templates``: SendGrid's transactional templates and their versions, per tenant.

Shapes follow SendGrid's Templates API: a template is ``{"id", "name",
"generation", "updated_at", "versions"}``, times are ``YYYY-MM-DD HH:MM:SS``
UTC, a version's ``active`` is 0 or 1. A template with versions always has
exactly one active version: the first version is made active, activating a
version deactivates the others, and deleting the active version activates the
newest remaining one.

A dynamic template's subject, HTML and text are parsed as Handlebars when a
version is saved, so a broken template is refused then (400 naming the field,
line and column) rather than failing every message later.

Listing follows SendGrid: ``generations`` defaults to ``legacy``; with
``page_size`` the answer is ``{"result", "_metadata"}`` and pages on with
``page_token``. Without ``page_size`` (SendGrid requires it; older clients
never sent it) every template is listed, also under ``"templates"`` as the
older API answered.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field
from quart import Blueprint, request
from quart_schema import document_request, tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, FieldError, bad_request
from appliance.api.request_body import json_body, json_object
from appliance.domain.templating import (
    TemplateError,
    TemplatePart,
    apply_substitutions,
    compile_template,
    render_dynamic_template,
)
from appliance.store.templates import (
    ActiveVersionRequired,
    Editor,
    Generation,
    PageCursor,
    Template,
    TemplateDetail,
    TemplateVersion,
    VersionContent,
)

blueprint = Blueprint("templates", __name__, url_prefix="/v3/templates")

MAX_PAGE_SIZE = 200
MAX_CONTENT_BYTES = 1_048_576  # html_content and plain_content each, as SendGrid
VERSION_BODY_BYTES = 4 * MAX_CONTENT_BYTES
_PARTS = {
    "subject": TemplatePart.SUBJECT,
    "html_content": TemplatePart.HTML,
    "plain_content": TemplatePart.TEXT,
}


class CreateTemplate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    generation: str = "legacy"


class RenameTemplate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)


class CreateVersion(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    subject: str = Field(max_length=255)
    html_content: str = ""
    plain_content: str = ""
    active: int | None = None
    generate_plain_content: bool = True
    editor: str = "code"
    test_data: str | None = None


class UpdateVersion(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    subject: str | None = Field(default=None, max_length=255)
    html_content: str | None = None
    plain_content: str | None = None
    active: int | None = None
    generate_plain_content: bool | None = None
    editor: str | None = None
    test_data: str | None = None


class PreviewVersion(BaseModel):
    dynamic_template_data: dict[str, Any] | None = None
    substitutions: dict[str, str] | None = None


# ---------------------------------------------------------------- shapes


def _timestamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


def _version_json(v: TemplateVersion, *, content: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": v.id,
        "template_id": v.template_id,
        "active": 1 if v.active else 0,
        "name": v.name,
        "subject": v.subject,
        "updated_at": _timestamp(v.updated_at),
        "generate_plain_content": v.generate_plain_content,
        "editor": v.editor.value,
    }
    if content:
        out["html_content"] = v.html_content
        out["plain_content"] = v.plain_content
        if v.test_data is not None:
            out["test_data"] = v.test_data
    return out


def template_json(
    t: Template, versions: tuple[TemplateVersion, ...] = (), *, content: bool = True
) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "generation": t.generation.value,
        "updated_at": _timestamp(t.updated_at),
        "versions": [_version_json(v, content=content) for v in versions],
    }


def detail_json(detail: TemplateDetail) -> dict[str, Any]:
    return template_json(detail.template, detail.versions)


# ---------------------------------------------------------------- checks


def _template_not_found() -> ApiError:
    return ApiError(404, "template not found", "template_id", None)


def _version_not_found() -> ApiError:
    return ApiError(404, "template version not found", "version_id", None)


def _generation(raw: str) -> Generation:
    try:
        return Generation(raw)
    except ValueError:
        raise bad_request("generation must be legacy or dynamic", "generation") from None


def _editor(raw: str) -> Editor:
    try:
        return Editor(raw)
    except ValueError:
        raise bad_request("editor must be code or design", "editor") from None


def _active(raw: int | None) -> bool | None:
    if raw is None:
        return None
    if raw not in (0, 1):
        raise bad_request("active must be 0 or 1", "active")
    return raw == 1


def _check_content(generation: Generation, fields: Mapping[str, str]) -> None:
    """Refuse oversized parts and, for dynamic templates, Handlebars that cannot parse."""
    errors: list[FieldError] = []
    for field, text in fields.items():
        if field != "subject" and len(text.encode()) > MAX_CONTENT_BYTES:
            errors.append(
                FieldError(f"{field} is too long: the limit is {MAX_CONTENT_BYTES} bytes", field)
            )
            continue
        if generation is Generation.DYNAMIC:
            try:
                compile_template(text, _PARTS[field])
            except TemplateError as exc:
                errors.append(
                    FieldError(
                        f"{field} is not a valid Handlebars template: line {exc.line}, "
                        f"column {exc.column}: {exc.reason}",
                        field,
                        "https://docs.sendgrid.com/for-developers/sending-email/using-handlebars",
                    )
                )
    if errors:
        raise ApiError(400, errors[0].message, errors=errors)


async def _template_or_404(template_id: str) -> Template:
    template = await app_ctx().store.templates.get(principal().tenant_id, template_id)
    if template is None:
        raise _template_not_found()
    return template


async def _detail_or_404(template_id: str) -> TemplateDetail:
    detail = await app_ctx().store.templates.detail(principal().tenant_id, template_id)
    if detail is None:
        raise _template_not_found()
    return detail


def _decode_cursor(token: str) -> PageCursor:
    try:
        padded = token + "=" * (-len(token) % 4)
        created, _, last_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        if not last_id:
            raise ValueError(token)
        return float(created), last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("page_token is not a token this API gave out", "page_token") from None


def _encode_cursor(t: Template) -> str:
    raw = f"{t.created_at!r}|{t.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _generations_arg(raw: str | None) -> frozenset[Generation]:
    names = [n.strip() for n in (raw or "legacy").split(",") if n.strip()]
    try:
        chosen = frozenset(Generation(n) for n in names)
    except ValueError:
        chosen = frozenset()
    if not chosen:
        raise bad_request("generations must be legacy, dynamic or legacy,dynamic", "generations")
    return chosen


def _page_size_arg(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}", "page_size")
    return int(raw)


# ---------------------------------------------------------------- templates


@blueprint.post("")
@tag(["Templates"])
@requires("templates.create")
@json_body(CreateTemplate)
async def create_template(data: CreateTemplate) -> tuple[dict[str, Any], int]:
    generation = _generation(data.generation)
    template = await app_ctx().store.templates.create(principal().tenant_id, data.name, generation)
    return template_json(template), 201


@blueprint.get("")
@tag(["Templates"])
@requires("templates.read")
async def list_templates() -> dict[str, Any]:
    generations = _generations_arg(request.args.get("generations"))
    page_size = _page_size_arg(request.args.get("page_size"))
    raw_token = request.args.get("page_token")
    after = _decode_cursor(raw_token) if raw_token else None
    store = app_ctx().store.templates
    tenant_id = principal().tenant_id
    fetch = None if page_size is None else page_size + 1
    found = await store.page(tenant_id, generations, limit=fetch, after=after)
    more = page_size is not None and len(found) > page_size
    found = found[:page_size] if page_size is not None else found
    result = [template_json(d.template, d.versions, content=False) for d in found]
    metadata: dict[str, Any] = {
        "self": request.url,
        "count": await store.count(tenant_id, generations),
    }
    if more and page_size is not None:
        query = {
            "generations": ",".join(sorted(g.value for g in generations)),
            "page_size": page_size,
            "page_token": _encode_cursor(found[-1].template),
        }
        metadata["next"] = f"{request.base_url}?{urlencode(query)}"
    body: dict[str, Any] = {"result": result, "_metadata": metadata}
    if page_size is None:
        body["templates"] = result
    return body


@blueprint.get("/<template_id>")
@tag(["Templates"])
@requires("templates.read")
async def get_template(template_id: str) -> dict[str, Any]:
    return detail_json(await _detail_or_404(template_id))


@blueprint.patch("/<template_id>")
@tag(["Templates"])
@requires("templates.update")
@json_body(RenameTemplate)
async def update_template(template_id: str, data: RenameTemplate) -> dict[str, Any]:
    if data.name is None:
        return detail_json(await _detail_or_404(template_id))
    detail = await app_ctx().store.templates.rename(principal().tenant_id, template_id, data.name)
    if detail is None:
        raise _template_not_found()
    return detail_json(detail)


@blueprint.post("/<template_id>")
@tag(["Templates"])
@requires("templates.create")
@json_body(RenameTemplate)
async def duplicate_template(template_id: str, data: RenameTemplate) -> tuple[dict[str, Any], int]:
    original = await _template_or_404(template_id)
    name = data.name or f"{original.name} Copy"[:100]
    copy = await app_ctx().store.templates.duplicate(principal().tenant_id, template_id, name)
    if copy is None:
        raise _template_not_found()
    return detail_json(copy), 201


@blueprint.delete("/<template_id>")
@tag(["Templates"])
@requires("templates.delete")
async def delete_template(template_id: str) -> tuple[str, int]:
    if not await app_ctx().store.templates.delete(principal().tenant_id, template_id):
        raise _template_not_found()
    return "", 204


# ---------------------------------------------------------------- versions


@blueprint.post("/<template_id>/versions")
@tag(["Templates"])
@requires("templates.versions.create")
@json_body(CreateVersion, max_bytes=VERSION_BODY_BYTES)
async def create_version(template_id: str, data: CreateVersion) -> tuple[dict[str, Any], int]:
    template = await _template_or_404(template_id)
    active = _active(data.active)
    content = VersionContent(
        name=data.name,
        subject=data.subject,
        html_content=data.html_content,
        plain_content=data.plain_content,
        generate_plain_content=data.generate_plain_content,
        editor=_editor(data.editor),
        test_data=data.test_data,
    )
    _check_content(
        template.generation,
        {
            "subject": data.subject,
            "html_content": data.html_content,
            "plain_content": data.plain_content,
        },
    )
    version = await app_ctx().store.templates.add_version(
        principal().tenant_id, template_id, content, active=bool(active)
    )
    if version is None:
        raise _template_not_found()
    return _version_json(version), 201


@blueprint.get("/<template_id>/versions/<version_id>")
@tag(["Templates"])
@requires("templates.versions.read")
async def get_version(template_id: str, version_id: str) -> dict[str, Any]:
    return _version_json((await _version_or_404(template_id, version_id))[1])


@blueprint.patch("/<template_id>/versions/<version_id>")
@tag(["Templates"])
@requires("templates.versions.update")
@json_body(UpdateVersion, max_bytes=VERSION_BODY_BYTES)
async def update_version(template_id: str, version_id: str, data: UpdateVersion) -> dict[str, Any]:
    template, _ = await _version_or_404(template_id, version_id)
    given = data.model_fields_set
    active = _active(data.active)
    changes: dict[str, object] = {}
    for field in ("name", "subject", "html_content", "plain_content", "generate_plain_content"):
        value = getattr(data, field)
        if field in given and value is not None:
            changes[field] = value
    if "editor" in given and data.editor is not None:
        changes["editor"] = _editor(data.editor)
    if "test_data" in given:
        changes["test_data"] = data.test_data
    parts = {f: v for f, v in changes.items() if f in _PARTS and isinstance(v, str)}
    _check_content(template.generation, parts)
    try:
        version = await app_ctx().store.templates.update_version(
            principal().tenant_id, template_id, version_id, changes, active=active
        )
    except ActiveVersionRequired as exc:
        raise bad_request(str(exc), "active") from None
    if version is None:
        raise _version_not_found()
    return _version_json(version)


@blueprint.delete("/<template_id>/versions/<version_id>")
@tag(["Templates"])
@requires("templates.versions.delete")
async def delete_version(template_id: str, version_id: str) -> tuple[str, int]:
    await _template_or_404(template_id)
    deleted = await app_ctx().store.templates.delete_version(
        principal().tenant_id, template_id, version_id
    )
    if not deleted:
        raise _version_not_found()
    return "", 204


@blueprint.post("/<template_id>/versions/<version_id>/activate")
@tag(["Templates"])
@requires("templates.versions.update")
async def activate_version(template_id: str, version_id: str) -> dict[str, Any]:
    await _template_or_404(template_id)
    version = await app_ctx().store.templates.activate_version(
        principal().tenant_id, template_id, version_id
    )
    if version is None:
        raise _version_not_found()
    return _version_json(version)


@blueprint.post("/<template_id>/versions/<version_id>/preview")
@tag(["Templates"])
@requires("templates.versions.read")
@document_request(PreviewVersion)
async def preview_version(template_id: str, version_id: str) -> dict[str, Any]:
    """Render a version: dynamic with ``dynamic_template_data`` (default: its
    ``test_data``), legacy with ``substitutions``. Nothing is stored or sent."""
    body = await json_object(required=False)
    template, version = await _version_or_404(template_id, version_id)
    if template.generation is Generation.LEGACY:
        subs = body.get("substitutions") or {}
        if not isinstance(subs, dict) or not all(isinstance(v, str) for v in subs.values()):
            raise bad_request("substitutions must be an object of strings", "substitutions")
        parts = [version.subject, version.html_content, version.plain_content]
        subject, html, text = (apply_substitutions(p, subs) for p in parts)
    else:
        data = body.get("dynamic_template_data")
        if data is None:
            data = _test_data(version)
        if not isinstance(data, dict):
            raise bad_request("dynamic_template_data must be an object", "dynamic_template_data")
        try:
            rendered = render_dynamic_template(
                data,
                subject=version.subject,
                html=version.html_content,
                text=version.plain_content,
            )
        except TemplateError as exc:
            field = {v: k for k, v in _PARTS.items()}.get(exc.part)
            raise bad_request(str(exc), field) from None
        subject, html, text = rendered.subject or "", rendered.html or "", rendered.text or ""
    return {
        "template_id": template.id,
        "version_id": version.id,
        "subject": subject,
        "html_content": html,
        "plain_content": text,
        "generate_plain_content": version.generate_plain_content,
    }


def _test_data(version: TemplateVersion) -> object:
    if not version.test_data:
        return {}
    try:
        parsed: object = json.loads(version.test_data)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def _version_or_404(template_id: str, version_id: str) -> tuple[Template, TemplateVersion]:
    found = await app_ctx().store.templates.get_version(
        principal().tenant_id, template_id, version_id
    )
    if found is None:
        if await app_ctx().store.templates.get(principal().tenant_id, template_id) is None:
            raise _template_not_found()
        raise _version_not_found()
    return found
