"""Warm-up caps: a warming-up domain sends its day's cap, the rest waits, the API says 429."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from appliance.domain.message_status import MessageStatus
from appliance.domain.warmup import WarmupSchedule
from tests.support.delivery import delivery_setup

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_a_warming_up_domain_sends_its_daily_cap_then_waits(
    tmp_path: Path, database_url: str
) -> None:
    cap = WarmupSchedule().daily_caps[0]
    async with delivery_setup(tmp_path, database_url) as setup:
        response = await setup.http.patch(
            f"/api/admin/domains/{setup.domain.id}", json={"warmup": True}, headers=setup.app.auth()
        )
        assert response.status_code == 200, response.text
        recipients = [f"user{i}@example.test" for i in range(cap + 5)]
        x_id = await setup.send(recipients)
        by_status: dict[MessageStatus, list[str]] = {}
        with trio.fail_after(30):
            while len(by_status.get(MessageStatus.DELIVERED, ())) < cap or not all(
                by_status.get(MessageStatus.QUEUED, [""])
            ):
                await trio.sleep(0.1)
                by_status = {}
                for message in await setup.messages(x_id):
                    by_status.setdefault(message.status, []).append(message.error_message or "")
        assert len(by_status[MessageStatus.DELIVERED]) == cap
        held = by_status[MessageStatus.QUEUED]
        assert len(held) == 5
        assert all("warming up" in text and f"cap of {cap}" in text for text in held)
        assert len(setup.mx.received()) == cap

        refused = await setup.http.post(
            "/v3/mail/send",
            json={
                "personalizations": [{"to": [{"email": "late@example.test"}]}],
                "from": {"email": "app@sender.test"},
                "subject": "one more",
                "content": [{"type": "text/plain", "value": "x"}],
            },
            headers=setup.app.auth(),
        )
        assert refused.status_code == 429
        message = refused.json()["errors"][0]["message"]
        assert message.startswith("Warm-up limit reached: domain sender.test is on day 1")
