"""A webhook receiver that times out, answers 500, then redirects (302 and 307): the batch is
retried each time, never lost, the redirects are not followed, and every attempt is in
/v3/user/webhooks/{id}/deliveries with what went wrong.

The dispatcher runs with a 0.5 s timeout and retries after 50 ms; the
receiver is a real HTTP server on 127.0.0.1 (tests/support/webhook_receiver.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import trio

from appliance.services.webhooks import WebhookDispatcher, WebhookSettings
from tests.support.appliance import appliance_config, run_appliance
from tests.support.sending import verified_domain
from tests.support.webhook_receiver import Answer, Received, open_receiver

TIMEOUT = 0.5


async def test_timeout_500_and_redirects_are_retried_logged_and_nothing_is_lost(
    tmp_path: Path, database_url: str
) -> None:
    config = appliance_config(tmp_path / "data", database_url)
    script: Iterator[tuple[float, Answer]] = iter(
        [
            (TIMEOUT * 4, (200, {}, b"too late")),  # the dispatcher gave up before this
            (0.0, (500, {}, b"internal error")),
            (0.0, (302, {"Location": "/elsewhere"}, b"")),
            (0.0, (307, {"Location": "http://127.0.0.1:9/moved"}, b"")),
        ]
    )
    plan: dict[int, tuple[float, Answer]] = {}

    def step(r: Received) -> tuple[float, Answer]:
        """Each request's (delay, answer), taken from the script once per request."""
        if id(r) not in plan:
            plan[id(r)] = next(script, (0.0, (200, {}, b"ok")))
        return plan[id(r)]

    async with (
        run_appliance(config, services=("http",)) as app,
        open_receiver() as receiver,
        httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        receiver.delay = lambda r: step(r)[0]
        receiver.answer = lambda r: step(r)[1]
        settings = WebhookSettings.from_context(
            app.ctx, poll_interval=0.05, retry_base=0.05, retry_max=0.05, timeout=TIMEOUT
        )
        dispatcher = WebhookDispatcher(app.ctx, settings)
        await nursery.start(partial(dispatcher.run, app.ctx.health.register("webhooks")))
        await verified_domain(app, "mail.example.test")
        hook = (await http.post("/v3/user/webhooks", json={"url": receiver.url})).json()
        sent = await http.post(
            "/v3/mail/send",
            json={
                "personalizations": [{"to": [{"email": f"r{i}@example.test"}]} for i in range(3)],
                "from": {"email": "sender@mail.example.test"},
                "subject": "hi",
                "content": [{"type": "text/plain", "value": "hello"}],
            },
        )
        assert sent.status_code == 202, sent.text

        with trio.fail_after(20):
            await receiver.wait_for(5)
            while await app.ctx.store.webhooks.pending():
                await trio.sleep(0.02)
        deliveries = (
            await http.get(f"/v3/user/webhooks/{hook['id']}/deliveries", params={"limit": 50})
        ).json()["result"]
        nursery.cancel_scope.cancel()

    batches = [json.loads(r.body) for r in receiver.requests]
    assert len(batches) == 5, [r.path for r in receiver.requests]
    assert all(b == batches[0] for b in batches), "the same batch each time"
    assert sorted(e["recipient_email"] for e in batches[-1]) == [
        f"r{i}@example.test" for i in range(3)
    ]
    assert len({e["event_id"] for e in batches[-1]}) == 3
    assert [r.path for r in receiver.requests] == ["/hook"] * 5, "redirects are not followed"

    oldest_first = deliveries[::-1]
    assert [d["status_code"] for d in oldest_first] == [None, 500, 302, 307, 200]
    assert [d["ok"] for d in oldest_first] == [False, False, False, False, True]
    timeout, error500, found, temporary, ok = oldest_first
    assert f"no answer from {receiver.url} within {TIMEOUT:g} s" in timeout["error"]
    assert "receiver answered 500; only a 2xx answer counts" in error500["error"]
    assert error500["response_snippet"] == "internal error"
    for redirect, target in ((found, "/elsewhere"), (temporary, "http://127.0.0.1:9/moved")):
        assert (
            "redirects are not followed; point the webhook at the final URL" in (redirect["error"])
        )
        assert target in redirect["error"], redirect
    assert ok["error"] is None and ok["events"] == 3
