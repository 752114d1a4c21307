"""``POST /v3/mail/send`` and ``/v3/mail/batch``, as SendGrid answers them.

The request is checked by SendGrid's rules (``domain.send_validation``),
then by what only the store knows (verified sender domain, template, batch
id, suppressions), and accepted in one transaction: the payload once, one
message per (personalization, recipient), each with its ``processed`` or
``dropped`` event. The answer is 202 with ``X-Message-Id``; a sandbox send is
checked the same way and answered 200 with nothing stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import trio
from quart import Blueprint, Response, request
from quart_schema import tag

from appliance import logs
from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, FieldError
from appliance.api.request_body import raw_body
from appliance.domain.acceptance import plan_acceptance, suppression_key
from appliance.domain.ids import new_id
from appliance.domain.send_errors import SendValidationError
from appliance.domain.send_request import MAX_REQUEST_BYTES, SendRequest, TemplateKind
from appliance.domain.send_validation import parse_send_request
from appliance.store.idempotency import StoredResponse
from appliance.store.messages import first_category

blueprint = Blueprint("mail_send", __name__)
log = logging.getLogger("appliance.mail_send")

IDEMPOTENCY_TTL = 24 * 3600.0
IDEMPOTENCY_KEY_MAX = 255
_HELP_DOMAINS = "Verify the domain under /api/admin/domains (POST …/{id}/verify) and keep it active"


class _KeyLocks:
    """One lock per idempotency key, so two concurrent retries cannot both send."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], trio.Lock] = {}

    def get(self, tenant_id: str, key: str) -> trio.Lock:
        return self._locks.setdefault((tenant_id, key), trio.Lock())

    def release(self, tenant_id: str, key: str, lock: trio.Lock) -> None:
        if not lock.locked() and lock.statistics().tasks_waiting == 0:
            self._locks.pop((tenant_id, key), None)


_key_locks = _KeyLocks()


async def _read_body() -> tuple[bytes, object]:
    raw = await raw_body(max_bytes=MAX_REQUEST_BYTES)
    try:
        return raw, json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "Bad Request", None, None) from None


async def _check_sender_domains(tenant_id: str, mail: SendRequest) -> None:
    ctx = app_ctx()
    senders = {mail.from_address.email} | {
        mail.from_for(i).email for i in range(len(mail.personalizations))
    }
    for email in sorted(senders):
        domain = email.rpartition("@")[2].lower()
        if await ctx.store.domains.sending_domain(tenant_id, domain) is None:
            raise ApiError(
                403,
                "Sender domain not verified",
                "from.email",
                f"{domain}: {_HELP_DOMAINS}",
            )


async def _check_references(tenant_id: str, mail: SendRequest) -> None:
    ctx = app_ctx()
    errors: list[FieldError] = []
    if mail.template_id is not None:
        found = await ctx.store.templates.active_version(tenant_id, mail.template_id)
        if found is None:
            errors.append(
                FieldError(
                    "The template_id is not a valid template ID.",
                    "template_id",
                    "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.template_id",
                )
            )
        elif (mail.template_kind is TemplateKind.DYNAMIC) != (
            found[0].generation.value == "dynamic"
        ):
            errors.append(
                FieldError("template_id does not match the template's generation", "template_id")
            )
    if mail.batch_id is not None and not await ctx.store.batches.exists(tenant_id, mail.batch_id):
        errors.append(
            FieldError(
                "The batch id is not valid: create one with POST /v3/mail/batch",
                "batch_id",
                "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.batch_id",
            )
        )
    if errors:
        raise ApiError(400, errors[0].message, errors=errors)


def _request_hash(raw: bytes) -> str:
    return hashlib.sha256(b"POST /v3/mail/send\n" + raw).hexdigest()


async def _accept(raw: bytes, body: object) -> Response:
    ctx = app_ctx()
    tenant_id = principal().tenant_id
    now = time.time()
    try:
        mail = parse_send_request(body, now=datetime.fromtimestamp(now, UTC))
    except SendValidationError as exc:
        raise ApiError(
            400,
            exc.errors[0].message,
            errors=[FieldError(e.message, e.field, e.help) for e in exc.errors],
        ) from None
    await _check_sender_domains(tenant_id, mail)
    await _check_references(tenant_id, mail)
    if mail.is_sandbox:
        return Response("", status=200)

    keys = {suppression_key(r.address.email) for r in mail.recipients()}
    suppressed = await ctx.store.suppressions.lists_for(tenant_id, keys)
    request_id = new_id("req", now=now)
    plan = plan_acceptance(mail, request_id=request_id, suppressed=suppressed, now=now)
    await ctx.store.messages.accept(
        tenant_id=tenant_id,
        plan=plan,
        payload=raw,
        category=first_category(mail.categories),
        batch_id=mail.batch_id,
        now=now,
    )
    ctx.wake_delivery()
    log.info(
        "mail accepted",
        extra={"x_message_id": request_id, "messages": len(plan.messages), "dropped": plan.dropped},
    )
    response = Response("", status=202)
    response.headers["X-Message-Id"] = request_id
    return response


@blueprint.post("/v3/mail/send")
@tag(["Mail send"])
@requires("mail.send")
async def mail_send() -> Response:
    raw, body = await _read_body()
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return await _accept(raw, body)
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise ApiError(
            400,
            f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters",
            "Idempotency-Key",
        )
    ctx = app_ctx()
    tenant_id = principal().tenant_id
    digest = _request_hash(raw)
    logs.bind(idempotency_key=key)
    lock = _key_locks.get(tenant_id, key)
    try:
        async with lock:
            stored = await ctx.store.idempotency.get(tenant_id, key, now=time.time())
            if stored is not None:
                if stored.request_hash != digest:
                    raise ApiError(
                        422,
                        "Idempotency-Key was already used with a different request body",
                        "Idempotency-Key",
                        "use a new key for a new request; keys are kept for 24 hours",
                    )
                replay = Response(stored.body, status=stored.status_code)
                for name, value in stored.headers.items():
                    replay.headers[name] = value
                replay.headers["Idempotent-Replayed"] = "true"
                return replay
            response = await _accept(raw, body)
            headers = {k: v for k, v in response.headers.items() if k.lower() == "x-message-id"}
            await ctx.store.idempotency.put(
                tenant_id,
                key,
                StoredResponse(
                    digest, response.status_code, headers, await response.get_data(as_text=False)
                ),
                now=time.time(),
                ttl=IDEMPOTENCY_TTL,
            )
            return response
    finally:
        _key_locks.release(tenant_id, key, lock)


@blueprint.post("/v3/mail/batch")
@tag(["Mail send"])
@requires("mail.batch.create")
async def create_batch() -> tuple[dict[str, Any], int]:
    batch_id = new_id("req")[4:]  # SendGrid batch ids are opaque strings
    await app_ctx().store.batches.create(principal().tenant_id, batch_id)
    return {"batch_id": batch_id}, 201


@blueprint.get("/v3/mail/batch/<batch_id>")
@tag(["Mail send"])
@requires("mail.batch.read")
async def get_batch(batch_id: str) -> dict[str, Any]:
    if not await app_ctx().store.batches.exists(principal().tenant_id, batch_id):
        raise ApiError(400, "invalid batch id", "batch_id", None)
    return {"batch_id": batch_id}
