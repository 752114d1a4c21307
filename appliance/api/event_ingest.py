"""``POST /v3/events/ingest``: an external MTA's log agent reports on our messages (seed 002).

Needs the ``events.ingest.create`` scope. An ingestion key holds only that
scope (``domain.scopes.INGEST_SCOPES``): it can report events and do nothing
else. The body is a JSON array of reports (``domain.event_ingest``); the
answer is 200 with one result per report, in order:
``{"results": [{"index", "message_id", "status", "event_id"?, "error"?}],
"stored", "duplicates", "not_stored", "errors"}``. A malformed body as a
whole is a 400; a bad or unknown item is an error in its own result and does
not stop the others.
"""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Blueprint

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import bad_request
from appliance.api.request_body import raw_body
from appliance.domain.event_ingest import ItemResult, ItemStatus, Report, parse_items

blueprint = Blueprint("event_ingest", __name__)

MAX_BODY = 2_000_000


@blueprint.post("/v3/events/ingest")
@requires("events.ingest.create")
async def ingest() -> tuple[dict[str, Any], int]:
    raw = await raw_body(max_bytes=MAX_BODY)
    try:
        body = json.loads(raw) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(
            f"the body is not valid JSON ({exc})",
            None,
            "send a JSON array of event reports with Content-Type: application/json",
        ) from None
    try:
        parsed = parse_items(body)
    except ValueError as exc:
        raise bad_request(
            str(exc),
            None,
            'e.g. [{"message_id": "msg_…", "event": "delivered", "timestamp": 1713888000, '
            '"smtp_response": "250 2.0.0 Ok", "mta": "mx1.example.com"}]',
        ) from None
    reports = [item for item in parsed if isinstance(item, Report)]
    applied = await app_ctx().store.event_ingestion.apply(
        principal().tenant_id, reports, now=time.time()
    )
    by_index = {r.index: r for r in applied}
    results: list[ItemResult] = [
        by_index[item.index] if isinstance(item, Report) else item for item in parsed
    ]
    counts = {status: 0 for status in ItemStatus}
    for r in results:
        counts[r.status] += 1
    return {
        "results": [r.json() for r in results],
        "stored": counts[ItemStatus.STORED],
        "duplicates": counts[ItemStatus.DUPLICATE],
        "not_stored": counts[ItemStatus.NOT_STORED],
        "errors": counts[ItemStatus.ERROR],
    }, 200
