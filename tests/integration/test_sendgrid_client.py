"""The official ``sendgrid`` Python package, pointed at our host, manages API keys."""

from __future__ import annotations

import json

import pytest
import trio
from python_http_client.exceptions import ForbiddenError, UnauthorizedError
from sendgrid import SendGridAPIClient

from tests.support.appliance import RunningAppliance


async def test_sendgrid_client_creates_lists_and_deletes_keys(
    appliance: RunningAppliance,
) -> None:
    def scenario() -> tuple[dict[str, object], list[dict[str, str]], int, list[dict[str, str]]]:
        sg = SendGridAPIClient(api_key=appliance.api_key, host=appliance.base_url)
        created = sg.client.api_keys.post(
            request_body={"name": "from-sendgrid-client", "scopes": ["mail.send"]}
        )
        assert created.status_code == 201
        body = json.loads(created.body)
        listed = json.loads(sg.client.api_keys.get(query_params={"limit": 50}).body)["result"]
        deleted = sg.client.api_keys._(body["api_key_id"]).delete()
        after = json.loads(sg.client.api_keys.get().body)["result"]
        return body, listed, deleted.status_code, after

    body, listed, deleted_status, after = await trio.to_thread.run_sync(scenario)
    assert body["name"] == "from-sendgrid-client"
    assert body["scopes"] == ["mail.send"]
    assert {"name": "from-sendgrid-client", "api_key_id": body["api_key_id"]} in listed
    assert deleted_status == 204
    assert body["api_key_id"] not in {k["api_key_id"] for k in after}


async def test_sendgrid_client_reads_scopes_and_errors(appliance: RunningAppliance) -> None:
    def scenario() -> tuple[list[str], ForbiddenError, UnauthorizedError]:
        sg = SendGridAPIClient(api_key=appliance.api_key, host=appliance.base_url)
        narrow = json.loads(
            sg.client.api_keys.post(request_body={"name": "narrow", "scopes": ["mail.send"]}).body
        )
        narrow_sg = SendGridAPIClient(api_key=narrow["api_key"], host=appliance.base_url)
        scopes = json.loads(narrow_sg.client.scopes.get().body)["scopes"]
        with pytest.raises(ForbiddenError) as forbidden:
            narrow_sg.client.api_keys.get()
        bad = SendGridAPIClient(api_key="SG.x.y", host=appliance.base_url)
        with pytest.raises(UnauthorizedError) as unauthorized:
            bad.client.scopes.get()
        return scopes, forbidden.value, unauthorized.value

    scopes, forbidden, unauthorized = await trio.to_thread.run_sync(scenario)
    assert scopes == ["mail.send"]
    assert forbidden.to_dict["errors"][0]["message"] == "Missing required scope: api_keys.read"
    assert unauthorized.status_code == 401
