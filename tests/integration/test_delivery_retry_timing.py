"""Retry timing under trio's autojump clock: hours of schedule in a few seconds.

The engine's wall clock is derived from trio's clock, so its due times and
sleeps move with the mock clock; the clock jumps only after the run loop has
been idle for a moment of real time (DB threads and the MX subprocess answer
well within it), so nothing but the engine's own waits is skipped. Periodic
timers (heartbeats, polling) are set long so each jump covers a real wait.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from appliance.domain.message_status import MessageStatus
from appliance.net.dns import Resolver
from appliance.net.smtp_client import SmtpTimeouts
from appliance.services.delivery import DeliveryEngine, DeliverySettings
from tests.support.delivery import DeliverySetup, delivery_setup

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_LONG = 10**6  # SMTP deadlines far beyond any retry, so a clock jump can only end a retry wait


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Real time while the MX subprocess and the appliance start; see ``_autojump``."""
    return trio.testing.MockClock(rate=1.0)


def _autojump(clock: trio.testing.MockClock) -> None:
    clock.rate = 0
    clock.autojump_threshold = 0.02


async def _run_engine(setup: DeliverySetup, nursery: trio.Nursery) -> None:
    start = time.time() - trio.current_time()
    ctx = setup.app.ctx
    settings = DeliverySettings.from_context(
        ctx,
        timeouts=SmtpTimeouts(**{f: _LONG for f in SmtpTimeouts.__dataclass_fields__}),
        poll_interval=10_000,
    )
    engine = DeliveryEngine(
        ctx,
        settings,
        resolver=Resolver(ctx.config.dns_nameservers, timeout=_LONG, lifetime=_LONG),
        wall=lambda: start + trio.current_time(),
    )
    await nursery.start(engine.run, ctx.health.register("delivery"))


async def _attempt_times(setup: DeliverySetup, message_id: str) -> list[tuple[str, float]]:
    events = await setup.app.ctx.store.messages.events_for(message_id)
    return [(e.event_type, e.created_at) for e in events if e.event_type != "processed"]


async def test_retries_follow_the_schedule_then_soft_bounce(
    tmp_path: Path, sqlite_url: str, clock: trio.testing.MockClock
) -> None:
    async with (
        delivery_setup(
            tmp_path,
            sqlite_url,
            services=("http",),
            smtp_retry_base_delay=60,
            smtp_max_retries=3,
            smtp_greylist_retry_delay=90,
            heartbeat_interval=30,
        ) as setup,
        trio.open_nursery() as nursery,
    ):
        _autojump(clock)
        await _run_engine(setup, nursery)
        x_id = await setup.send(["tempfail@example.test", "greylist@example.test"])
        settled = await setup.wait_settled(x_id, timeout=10**5, poll=5)

        tempfail = settled["tempfail@example.test"]
        assert tempfail.status is MessageStatus.BOUNCED
        assert tempfail.attempts == 4
        times = await _attempt_times(setup, tempfail.id)
        assert [kind for kind, _ in times] == ["deferred", "deferred", "deferred", "bounce"]
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(times)]
        # ~60 s, ~5 min, ~15 min, each within the +-10 % jitter (plus the engine's own work).
        for gap, nominal in zip(gaps, (60, 300, 900), strict=True):
            assert nominal * 0.9 - 1 <= gap <= nominal * 1.1 + 1, (gaps, nominal)
        bounce = (await setup.app.ctx.store.messages.events_for(tempfail.id))[-1]
        assert bounce.data["bounce_type"] == "soft"

        greylisted = settled["greylist@example.test"]
        assert greylisted.status is MessageStatus.DELIVERED
        assert greylisted.attempts == 2
        times = await _attempt_times(setup, greylisted.id)
        assert [kind for kind, _ in times] == ["deferred", "delivered"]
        gap = times[1][1] - times[0][1]
        assert 90 * 0.9 - 1 <= gap <= 90 * 1.1 + 1, gap
        nursery.cancel_scope.cancel()


async def test_a_slow_down_reply_holds_back_only_that_destination(
    tmp_path: Path, sqlite_url: str, clock: trio.testing.MockClock
) -> None:
    async with (
        delivery_setup(
            tmp_path,
            sqlite_url,
            services=("http",),
            smtp_retry_base_delay=600,
            heartbeat_interval=30,
        ) as setup,
        trio.open_nursery() as nursery,
    ):
        _autojump(clock)
        await _run_engine(setup, nursery)
        first = await setup.send(["slowdown@example.test"])
        (slow,) = (
            # Virtual time: the autojump clock runs on while the store's threads work, so
            # a 20 s default could pass before the first attempt is recorded.
            await setup.wait_settled(
                first, statuses={MessageStatus.DEFERRED}, poll=1, timeout=10**5
            )
        ).values()
        assert slow.attempts == 1
        # While example.test is held back, its next message waits without an attempt
        # being counted, and another domain is delivered at once.
        second = await setup.send(["ok@example.test", "ok@implicit.test"])
        settled = await setup.wait_settled(
            second,
            statuses={MessageStatus.QUEUED, MessageStatus.DELIVERED},
            poll=1,
            timeout=10**5,
        )
        held = settled["ok@example.test"]
        assert settled["ok@implicit.test"].status is MessageStatus.DELIVERED
        assert held.status is MessageStatus.QUEUED and held.attempts == 0
        assert held.error_message is not None and "slow down" in held.error_message
        # The hold ends (30 s after the first "slow down"), then the message goes.
        settled = await setup.wait_settled(second, poll=5, timeout=10**5)
        assert settled["ok@example.test"].status is MessageStatus.DELIVERED
        assert settled["ok@example.test"].attempts == 1
        nursery.cancel_scope.cancel()
