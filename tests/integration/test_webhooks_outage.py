"""A receiver down for a (simulated) day: the webhook is disabled with an alert, then
re-enabled, and every event arrives exactly once.

trio's MockClock autojumps once the run loop is idle; the dispatcher's wall clock is
derived from trio time, so a day of back-off passes in seconds. Periodic timers
(heartbeats, the dispatcher's scan) are long so each jump covers a real wait (see
test_delivery_retry_timing.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import trio
import trio.testing

from appliance.services.webhooks import WebhookDispatcher, WebhookSettings
from appliance.store.schema import events
from tests.support.appliance import appliance_config, run_appliance
from tests.support.sending import verified_domain
from tests.support.webhook_receiver import Received, open_receiver

DAY = 86400.0
_LONG = 10**6


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(rate=1.0)


def _autojump(clock: trio.testing.MockClock) -> None:
    clock.rate = 0
    clock.autojump_threshold = 0.02


async def test_receiver_down_for_a_day_then_back(
    tmp_path: Path, database_url: str, clock: trio.testing.MockClock
) -> None:
    config = appliance_config(tmp_path / "data", database_url, heartbeat_interval=3600)
    down = True

    def answer(_r: Received) -> tuple[int, dict[str, str], bytes]:
        return (503, {}, b"maintenance") if down else (200, {}, b"ok")

    async with (
        run_appliance(config) as app,
        open_receiver() as receiver,
        httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=_LONG) as http,
        trio.open_nursery() as nursery,
    ):
        receiver.answer = answer
        await verified_domain(app, "mail.example.test")
        hook = (await http.post("/v3/user/webhooks", json={"url": receiver.url})).json()
        sent = await http.post(
            "/v3/mail/send",
            json={
                "personalizations": [
                    {"to": [{"email": "a@example.test"}, {"email": "b@example.test"}]}
                ],
                "from": {"email": "sender@mail.example.test"},
                "subject": "hi",
                "content": [{"type": "text/plain", "value": "hello"}],
            },
        )
        assert sent.status_code == 202

        _autojump(clock)
        start = time.time() - trio.current_time()
        settings = WebhookSettings.from_context(
            app.ctx, poll_interval=600, heartbeat_interval=3600, timeout=_LONG
        )
        dispatcher = WebhookDispatcher(app.ctx, settings, wall=lambda: start + trio.current_time())
        await nursery.start(dispatcher.run, app.ctx.health.register("webhooks"))

        with trio.fail_after(3 * DAY):
            while not (current := (await http.get(f"/v3/user/webhooks/{hook['id']}")).json())[
                "disabled_at"
            ]:
                await trio.sleep(600)
        assert current["enabled"] is False
        assert current["disabled_at"] - current["failing_since"] >= DAY
        assert (
            "503" in current["disabled_reason"] and '"enabled": true' in current["disabled_reason"]
        )
        attempts = (
            await http.get(f"/v3/user/webhooks/{hook['id']}/deliveries", params={"limit": 1000})
        ).json()["result"]
        assert all(a["status_code"] == 503 for a in attempts)
        # 30 s doubling to the 1 h cap, then hourly: about 30 tries in the day, not thousands.
        assert 20 <= len(attempts) <= 40, len(attempts)
        gaps = sorted(
            round(b["attempted_at"] - a["attempted_at"])
            for a, b in zip(attempts[1:], attempts, strict=False)
        )
        # (An autojump during a DB call can only add up to one 600 s scan period.)
        assert gaps[0] >= 30 and gaps[-1] <= 3600 + 600, gaps
        assert gaps.count(3600) >= len(gaps) // 2, gaps
        alerts = await app.ctx.store.db.read(
            lambda c: c.execute(
                sa.select(events).where(events.c.event_type == "webhook_disabled")
            ).all()
        )
        assert len(alerts) == 1 and json.loads(alerts[0].data)["webhook_id"] == hook["id"]

        # A day later still nothing is sent: the webhook stays off until asked.
        seen = len(receiver.requests)
        await trio.sleep(DAY)
        assert len(receiver.requests) == seen

        receiver.requests.clear()
        down = False
        patched = await http.patch(f"/v3/user/webhooks/{hook['id']}", json={"enabled": True})
        assert patched.status_code == 200
        assert patched.json()["enabled"] and patched.json()["disabled_at"] is None
        with trio.fail_after(DAY):
            while await app.ctx.store.webhooks.pending():
                await trio.sleep(60)
        delivered = [e for r in receiver.requests for e in json.loads(r.body)]
        kinds = sorted((e["event_type"], e.get("recipient_email")) for e in delivered)
        assert kinds == [
            ("processed", "a@example.test"),
            ("processed", "b@example.test"),
            ("webhook_disabled", None),
        ]
        assert len({e["event_id"] for e in delivered}) == 3
        nursery.cancel_scope.cancel()
