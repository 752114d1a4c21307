"""``POST /api/admin/relays/test``: one full SMTP transaction against a relay, step by step.

The body names a stored relay (``{"relay_id": "rly_…"}``, an id or a name)
or gives one inline, with the fields of ``POST /api/admin/relays`` (so a
relay can be tried before it is created), plus optional ``from`` and ``to``
addresses for the test transaction (default ``postmaster@<this host>``, and
``to`` defaults to ``from``). ``services/relay_test.py`` does the network
part: EHLO, STARTTLS or implicit TLS, AUTH, MAIL, RCPT, DATA with a short
message saying it is a Postyard relay test, QUIT, each step with a 10 s
deadline. The answer is 200 whether or not the relay passed::

    {"ok": false, "failed_step": "auth",
     "steps": [{"step": "connect", "ok": true, "reply": null, "detail": "…", "elapsed_ms": 3}, …],
     "message": "The relay test failed at auth: … 535 5.7.8 …. Check the username and password…"}

Scope ``relays.create``: the test opens an SMTP session with credentials to
any host given inline, so it is a write-level power (and the "try it before
you create it" step), not a read. Relays are shared by all tenants.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

from pydantic import Field, StrictStr
from quart import Blueprint
from quart_schema import tag

from appliance.api.authz import app_ctx, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.relays import RelayFields, new_relay, relay_not_found
from appliance.api.request_body import json_body
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.domain.secret_box import SecretBoxError
from appliance.protocols.smtp_client import check_address
from appliance.protocols.smtp_client_errors import LocalProtocolError
from appliance.services.relay_test import (
    RelayEndpoint,
    RelayTestReport,
    endpoint_for,
    run_relay_test,
)

blueprint = Blueprint("relay_test", __name__, url_prefix="/api/admin/relays/test")


class RelayTestBody(RelayFields):
    relay_id: StrictStr | None = None
    name: StrictStr | None = None  # accepted (and unused) so a create body can be tested as is
    from_address: StrictStr | None = Field(default=None, alias="from")
    to: StrictStr | None = None


def _helo_name() -> str:
    config = app_ctx().config
    return (config.hostname or socket.getfqdn()).rstrip(".").lower()


def _test_address(value: str | None, field: str, default: str) -> str:
    if value is None:
        try:
            check_address("sender", default)
        except LocalProtocolError:
            raise bad_request(
                f"no default {field} address: give one", field, "any address the relay accepts"
            ) from None
        return default
    try:
        return str(parse_address(value.strip()))
    except InvalidAddressError as exc:
        raise bad_request(f"{field}: {exc}", field) from None


async def _endpoint(data: RelayTestBody) -> RelayEndpoint:
    inline = data.model_fields_set & set(RelayFields.model_fields)
    if data.relay_id is not None:
        if inline:
            raise bad_request(
                "give either relay_id or an inline relay, not both "
                f"(got {', '.join(sorted(inline))})",
                "relay_id",
            )
        relay = await app_ctx().store.relays.find(data.relay_id)
        if relay is None:
            raise relay_not_found(data.relay_id)
        try:
            return endpoint_for(relay, app_ctx().secrets)
        except SecretBoxError as exc:
            raise ApiError(500, str(exc), "relay_id", "or set the password again") from None
    if data.host is None:
        raise bad_request(
            "give relay_id, or an inline relay with at least host",
            "relay_id",
            'e.g. {"host": "smtp.example.com", "port": 587, "username": …, "password": …}',
        )
    inline_relay = new_relay(data, "inline")
    return dataclasses.replace(
        endpoint_for(dataclasses.replace(inline_relay, password=None), app_ctx().secrets),
        password=data.password,
    )


def report_json(report: RelayTestReport) -> dict[str, Any]:
    failed = report.failed_step
    return {
        "ok": report.ok,
        "relay": {
            "host": report.endpoint.host,
            "port": report.endpoint.port,
            "tls_mode": report.endpoint.tls_mode,
        },
        "steps": [
            {
                "step": s.step.value,
                "ok": s.ok,
                "reply": str(s.reply) if s.reply is not None else None,
                "detail": s.detail,
                "elapsed_ms": s.elapsed_ms,
            }
            for s in report.steps
        ],
        "failed_step": failed.value if failed is not None else None,
        "message": report.message,
    }


@blueprint.post("")
@tag(["Relays"])
@requires("relays.create")
@json_body(RelayTestBody)
async def post_relay_test(data: RelayTestBody) -> dict[str, Any]:
    endpoint = await _endpoint(data)
    helo = _helo_name()
    envelope_from = _test_address(data.from_address, "from", f"postmaster@{helo}")
    recipient = _test_address(data.to, "to", envelope_from)
    report = await run_relay_test(
        endpoint, helo_name=helo, envelope_from=envelope_from, recipient=recipient
    )
    return report_json(report)
