"""``POST /v3/mail/send`` and ``/v3/mail/batch``, as SendGrid answers them.

The body is accepted by the pipeline shared with SMTP submission
(``services.acceptance``): SendGrid's rules, verified sender domain,
template and batch id, suppressions, one transaction. This module reads the
body, keeps ``Idempotency-Key`` answers, and words refusals as SendGrid does.
The answer is 202 with ``X-Message-Id``; a sandbox send is checked the same
way and answered 200 with nothing stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import trio
from quart import Blueprint, Response, current_app, request
from quart_schema import tag

from appliance import logs
from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, FieldError
from appliance.api.request_body import raw_body
from appliance.auth import AuthFailure
from appliance.domain.ids import new_id
from appliance.domain.json_text import NOT_UNICODE, loads_utf8, lone_surrogate_field
from appliance.domain.send_errors import SendValidationError
from appliance.domain.send_request import MAX_REQUEST_BYTES
from appliance.services.acceptance import (
    AcceptanceError,
    InvalidReferences,
    MailAcceptance,
    QueueFull,
    SenderDomainNotVerified,
    SendingLimitExceeded,
    StoreUnavailable,
    TenantSuspended,
)
from appliance.store.idempotency import StoredResponse

blueprint = Blueprint("mail_send", __name__)

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
        body = loads_utf8(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "Bad Request", None, None) from None
    field = lone_surrogate_field(body)
    if field is not None:
        raise ApiError(400, NOT_UNICODE, field or None, None)
    return raw, body


def _request_hash(raw: bytes) -> str:
    return hashlib.sha256(b"POST /v3/mail/send\n" + raw).hexdigest()


def _acceptance() -> MailAcceptance:
    """This app's acceptance pipeline (made on first use, kept with the app)."""
    extensions = current_app.extensions
    pipeline = extensions.get("postyard.acceptance")
    if pipeline is None:
        pipeline = extensions["postyard.acceptance"] = MailAcceptance(app_ctx())
    assert isinstance(pipeline, MailAcceptance)
    return pipeline


async def _accept(raw: bytes, body: object) -> Response:
    try:
        accepted = await _acceptance().accept(principal().tenant_id, body, payload=raw)
    except SendValidationError as exc:
        raise ApiError(
            400,
            exc.errors[0].message,
            errors=[FieldError(e.message, e.field, e.help) for e in exc.errors],
        ) from None
    except AcceptanceError as exc:
        raise _api_error(exc) from None
    if accepted.sandbox:
        return Response("", status=200)
    response = Response("", status=202)
    response.headers["X-Message-Id"] = accepted.request_id
    return response


def _api_error(exc: AcceptanceError) -> Exception:
    """The HTTP answer to a refused send, in SendGrid's words where it has them."""
    if isinstance(exc, SenderDomainNotVerified):
        return ApiError(
            403, "Sender domain not verified", "from.email", f"{exc.domain}: {_HELP_DOMAINS}"
        )
    if isinstance(exc, InvalidReferences):
        errors = [FieldError(p.message, p.field, p.help) for p in exc.problems]
        return ApiError(400, errors[0].message, errors=errors)
    if isinstance(exc, TenantSuspended):
        return ApiError(403, AuthFailure.TENANT_SUSPENDED.value, None, exc.reason)
    if isinstance(exc, SendingLimitExceeded):
        return ApiError(429, str(exc), None, None)
    if isinstance(exc, QueueFull):
        return ApiError(503, str(exc), None, None, headers={"Retry-After": "60"})
    if isinstance(exc, StoreUnavailable):
        return exc.error  # a StoreError: 503 with Retry-After (api/app.py), a bug: 500
    raise AssertionError(f"unmapped acceptance error {exc!r}")


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
