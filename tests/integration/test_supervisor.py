"""The supervisor restarts crashed services, and /readyz tells the truth about them."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from appliance.health import ServiceHealth
from appliance.supervisor import ServiceSpec
from tests.support.appliance import appliance_config, run_appliance


class CrashOnDemand:
    """A service that runs until told to crash, like a worker hitting a bug."""

    def __init__(self) -> None:
        self.crash = trio.Event()
        self.starts = 0

    async def run(self, health: ServiceHealth, *, task_status: trio.TaskStatus[None]) -> None:
        self.starts += 1
        self.crash = trio.Event()
        task_status.started()
        while not self.crash.is_set():
            health.beat()
            with trio.move_on_after(0.1):
                await self.crash.wait()
        raise RuntimeError("worker hit a bug")


async def _ready(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/readyz")


async def test_crashed_service_is_restarted_and_visible_in_readyz(
    tmp_path: Path, sqlite_url: str
) -> None:
    worker = CrashOnDemand()
    config = appliance_config(
        tmp_path / "data", sqlite_url, restart_backoff_max=1.0, shutdown_grace=0.3
    )
    async with run_appliance(config, extra_services=[ServiceSpec("worker", worker.run)]) as app:
        app.supervisor.backoff_initial = 0.6  # long enough to observe the 503
        async with httpx.AsyncClient(base_url=app.base_url) as client:
            r = await _ready(client)
            assert r.status_code == 200
            assert r.json()["services"]["worker"]["state"] == "running"

            worker.crash.set()
            await trio.sleep(0.2)
            down = await _ready(client)
            assert down.status_code == 503
            svc = down.json()["services"]["worker"]
            assert svc["state"] == "restarting"
            assert svc["restarts"] == 1
            assert svc["last_error"] == "RuntimeError: worker hit a bug"

            with trio.fail_after(5):
                while worker.starts < 2 or (await _ready(client)).status_code != 200:
                    await trio.sleep(0.05)
            up = (await _ready(client)).json()["services"]["worker"]
            assert up["state"] == "running" and up["restarts"] == 1

            metrics = (await client.get("/metrics")).text
            assert 'postyard_service_crashes_total{service="worker"} 1.0' in metrics
            assert 'postyard_service_up{service="worker"} 1.0' in metrics


async def test_a_service_whose_heartbeat_stops_makes_readyz_fail(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A loop stuck without crashing is caught by its stale heartbeat."""
    stuck = trio.Event()

    async def silent(health: ServiceHealth, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while not stuck.is_set():
            health.beat()
            await trio.sleep(0.05)
        await trio.sleep_forever()

    config = appliance_config(tmp_path / "data", sqlite_url, shutdown_grace=0.3)
    async with run_appliance(config, extra_services=[ServiceSpec("silent", silent)]) as app:
        async with httpx.AsyncClient(base_url=app.base_url) as client:
            assert (await _ready(client)).status_code == 200
            stuck.set()
            await trio.sleep(app.ctx.health.stale_after + 0.3)
            r = await _ready(client)
            assert r.status_code == 503
            svc = r.json()["services"]["silent"]
            assert svc["state"] == "running" and svc["healthy"] is False
            assert svc["heartbeat_age_seconds"] > app.ctx.health.stale_after


async def test_operator_restart_of_one_service_leaves_others_running(
    tmp_path: Path, sqlite_url: str
) -> None:
    worker = CrashOnDemand()
    config = appliance_config(tmp_path / "data", sqlite_url, shutdown_grace=0.3)
    async with run_appliance(config, extra_services=[ServiceSpec("worker", worker.run)]) as app:
        app.supervisor.restart("worker")
        with trio.fail_after(5):
            while worker.starts < 2:
                await trio.sleep(0.02)
        health = app.ctx.health.snapshot()
        assert health["worker"]["restarts"] == 0, "a requested restart is not a crash"
        assert health["http"]["state"] == "running"
