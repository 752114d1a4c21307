"""The HTTP service: hypercorn's trio worker serving the quart-trio app."""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from appliance.api.app import create_app
from appliance.context import AppContext
from appliance.health import ServiceHealth
from appliance.supervisor import beat_until

log = logging.getLogger("appliance.http")


def hypercorn_config(ctx: AppContext) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [str(ctx.config.http)]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = ctx.config.shutdown_grace
    config.keep_alive_timeout = 75
    config.include_server_header = False
    return config


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    app = create_app(ctx)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, app, hypercorn_config(ctx), shutdown_trigger=ctx.shutdown.wait)
        )
        ctx.http_url = binds[0] if binds else None
        health.beat(listening=binds)
        log.info("http listening", extra={"binds": binds})
        task_status.started()
        await beat_until(health, ctx.shutdown, ctx.config.heartbeat_interval)
