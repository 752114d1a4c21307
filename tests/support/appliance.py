"""A real appliance for tests: its own data directory, store, and HTTP on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from appliance.config import Config, load_config
from appliance.context import AppContext
from appliance.provisioning import InitResult
from appliance.runner import drain, make_supervisor, open_appliance_initialized, service_specs
from appliance.supervisor import ServiceSpec, Supervisor


@dataclass
class RunningAppliance:
    ctx: AppContext
    supervisor: Supervisor
    init: InitResult

    @property
    def base_url(self) -> str:
        assert self.ctx.http_url is not None
        return self.ctx.http_url

    @property
    def api_key(self) -> str:
        return self.init.api_key

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.api_key}"}


def appliance_config(data_dir: Path, database_url: str, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database_url": database_url,
        "http_listen": "127.0.0.1:0",
        "inbound_listen": "127.0.0.1:0",
        "submission_listen": "127.0.0.1:0",
        "heartbeat_interval": 0.2,
        "shutdown_grace": 3,
        "restart_backoff_max": 0.5,
        **overrides,
    }
    return load_config(environ={}, overrides=values)


@asynccontextmanager
async def run_appliance(
    config: Config,
    *,
    services: Collection[str] = ("http",),
    extra_services: list[ServiceSpec] | None = None,
) -> AsyncIterator[RunningAppliance]:
    """Run the named services of the appliance (by default only HTTP: nothing is delivered)."""
    async with open_appliance_initialized(config) as (ctx, created):
        assert created is not None, "tests start from an empty store"
        specs = service_specs(ctx, only=services) + (extra_services or [])
        supervisor = make_supervisor(ctx, specs)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            yield RunningAppliance(ctx, supervisor, created)
            await drain(ctx, supervisor, nursery.cancel_scope)
