"""Wiring: open the store, build the context, run the services until a signal."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from functools import partial

import trio

from appliance.config import Config
from appliance.context import AppContext
from appliance.net.dns import init_dns_backend
from appliance.provisioning import (
    InitResult,
    ensure_secret_key,
    initialize,
    is_initialized,
    load_secret_box,
)
from appliance.services import delivery, http, inbound, reputation, submission, webhooks
from appliance.store.store import Store
from appliance.supervisor import ServiceSpec, Supervisor

log = logging.getLogger("appliance")


@asynccontextmanager
async def open_appliance(config: Config) -> AsyncIterator[AppContext]:
    """Open the store (migrating it) and build the shared context."""
    init_dns_backend()
    store = await Store.open(config.effective_database_url, pool_size=config.db_pool_size)
    try:
        await store.roles.ensure_builtins()
        yield AppContext.build(config, store, load_secret_box(config))
    finally:
        store.close()


def service_specs(ctx: AppContext, only: Collection[str] | None = None) -> list[ServiceSpec]:
    """The appliance's services; ``only`` picks some by name (tests run a subset)."""
    specs = [
        ServiceSpec("http", partial(http.run, ctx)),
        ServiceSpec("delivery", partial(delivery.run, ctx)),
        ServiceSpec("submission", partial(submission.run, ctx)),
        ServiceSpec("inbound", partial(inbound.run, ctx)),
        ServiceSpec("reputation", partial(reputation.run, ctx)),
        ServiceSpec("webhooks", partial(webhooks.run, ctx)),
    ]
    if only is not None:
        unknown = set(only) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.name in only]
    return specs


def make_supervisor(ctx: AppContext, specs: list[ServiceSpec]) -> Supervisor:
    return Supervisor(
        specs,
        ctx.health,
        ctx.metrics,
        shutdown=ctx.shutdown,
        backoff_max=ctx.config.restart_backoff_max,
    )


async def drain(ctx: AppContext, supervisor: Supervisor, cancel: trio.CancelScope) -> bool:
    """Ask every service to stop, wait up to the grace period, then cancel the rest.

    Returns True when everything drained in time.
    """
    ctx.shutdown.set()
    with trio.move_on_after(ctx.config.shutdown_grace):
        await supervisor.stopped.wait()
    drained = supervisor.stopped.is_set()
    if not drained:
        log.warning(
            "services did not drain in time; cancelling them",
            extra={"grace_seconds": ctx.config.shutdown_grace},
        )
    cancel.cancel()
    return drained


def capture_notice(config: Config) -> str:
    """The capture-mode sentence of the start-up banner and log."""
    return (
        "capture mode: outbound mail is kept in the built-in mailbox at "
        f"{config.admin_url}capture, nothing is delivered; sending domains may send "
        "before their DNS records verify"
    )


async def serve(
    config: Config,
    *,
    announce: Callable[[InitResult | None, AppContext], None],
) -> None:
    """Run the appliance until SIGTERM or SIGINT; initialise an empty store first."""
    async with open_appliance_initialized(config) as (ctx, created):
        supervisor = make_supervisor(ctx, service_specs(ctx))
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                announce(created, ctx)
                if config.capture_mode:
                    log.warning(capture_notice(config), extra={"capture_mode": True})
                log.info(
                    "postyard ready",
                    extra={
                        "admin_url": config.admin_url,
                        "http": ctx.http_url,
                        "capture_mode": config.capture_mode,
                    },
                )
                async for signum in signals:
                    log.info("shutting down", extra={"signal": signal.Signals(signum).name})
                    break
                nursery.start_soon(_cancel_on_second_signal, signals, nursery.cancel_scope)
                await drain(ctx, supervisor, nursery.cancel_scope)
    log.info("shutdown complete")


@asynccontextmanager
async def open_appliance_initialized(
    config: Config,
) -> AsyncIterator[tuple[AppContext, InitResult | None]]:
    ensure_secret_key(config)
    async with open_appliance(config) as ctx:
        created = None
        if not await is_initialized(ctx.store):
            created = await initialize(config, ctx.store)
        yield ctx, created


async def _cancel_on_second_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.warning("second signal: stopping now", extra={"signal": signal.Signals(signum).name})
        scope.cancel()
        return
