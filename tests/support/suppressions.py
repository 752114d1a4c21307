"""Helpers for the suppression API tests: seeded entries and clients."""

from __future__ import annotations

import httpx
from sendgrid import SendGridAPIClient

from appliance.domain.acceptance import suppression_key
from appliance.store.suppressions import insert_or_keep, suppression_row
from tests.support.appliance import RunningAppliance


async def seed(
    app: RunningAppliance,
    list_name: str,
    email: str,
    created: float,
    *,
    reason: str | None = None,
    status: str | None = None,
    tenant_id: str | None = None,
) -> None:
    """An entry as delivery or an inbound report writes it (same store function)."""
    row = suppression_row(
        tenant_id or app.init.tenant_id,
        list_name,
        suppression_key(email),
        reason=reason,
        status=status,
        message_id=None,
        now=created,
    )
    await app.ctx.store.db.write(lambda conn: insert_or_keep(conn, [row]))


def client(app: RunningAppliance, key: str | None = None) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=key or app.api_key, host=app.base_url)


def http(app: RunningAppliance, key: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=app.base_url, headers=app.auth(key), timeout=10)
