"""The delivery engine: claim due messages, compose them, send them, record what happened.

One supervised service per node. Its tasks:

- the claim loop takes due messages from the queue in batches with a lease
  (``store.queue.claim``), as long as fewer than ``delivery_concurrency``
  are in flight; accepted mail wakes it at once (``ctx.wake_delivery``);
- each batch is composed (rendered, DKIM-signed, VERP envelope), checked
  against warm-up caps and handed to its destination (recipient domain or
  relay, per IP pool);
- per destination, up to ``destination_connections`` workers each hold one
  SMTP connection and send the destination's jobs over it, one transaction
  per message (each message has its own VERP envelope sender);
- the outcome writer records outcomes in batches (one transaction each:
  status, event, suppression) and frees their slots;
- leases of in-flight messages are renewed; expired leases of crashed nodes
  are released back to the queue; queue depth is published.

A message's statuses: QUEUED/DEFERRED → PROCESSING (claimed) → RENDERED
(composed) → SENDING (taken by a connection) → DELIVERED | DEFERRED |
BOUNCED (or FAILED when it cannot be composed). Delivery is at least once:
a node that dies mid-transaction leaves its claims to expire and be sent
again, never lost.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from appliance.context import AppContext
from appliance.domain.delivery_outcome import (
    Attempt,
    DeliveryOutcome,
    Route,
    delivered,
    failed,
    is_throttling,
    refused,
)
from appliance.domain.message_status import MessageStatus
from appliance.domain.retry_schedule import RetryPolicy
from appliance.health import ServiceHealth
from appliance.net.dns import Resolver
from appliance.net.smtp_client import DEFAULT_TIMEOUTS, SmtpTimeouts
from appliance.net.smtp_client_errors import SmtpSessionError
from appliance.protocols.smtp_client_errors import LocalRefusal, MessageTooBig
from appliance.services.capture_target import connect_capture
from appliance.services.composer import Composer
from appliance.services.delivery_targets import (
    Connected,
    DestinationUnreachable,
    connect_mx,
    connect_relay,
)
from appliance.services.destination import Destination, DestinationKey, Job, TokenBucket, is_idle
from appliance.services.mx_routing import MxRouter
from appliance.services.pool_directory import PoolDirectory
from appliance.services.warmup_gate import WarmupGate
from appliance.store.messages import Message
from appliance.store.queue import DeliveryQueue

log = logging.getLogger("appliance.delivery")

CLAIM_BATCH = 200  # messages per claim
JOBS_PER_TAKE = 20  # jobs a worker marks SENDING at once
IDLE_CONNECTION_SECONDS = 5.0  # an idle connection waits this long for more jobs
REAP_INTERVAL = 30.0  # seconds between scans for expired leases
WRITE_BATCH = 500


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    concurrency: int
    destination_connections: int
    destination_rate: float
    messages_per_connection: int
    lease_seconds: float
    smtp_port: int
    helo_name: str
    poll_interval: float = 1.0
    timeouts: SmtpTimeouts = DEFAULT_TIMEOUTS

    @classmethod
    def from_context(cls, ctx: AppContext, **overrides: Any) -> DeliverySettings:
        config = ctx.config
        values: dict[str, Any] = {
            "concurrency": config.delivery_concurrency,
            "destination_connections": config.destination_connections,
            "destination_rate": config.destination_rate,
            "messages_per_connection": config.messages_per_connection,
            "lease_seconds": config.lease_duration,
            "smtp_port": config.smtp_port,
            "helo_name": config.effective_hostname,
            "timeouts": SmtpTimeouts(
                connect=config.smtp_connect_timeout,
                greeting=config.smtp_command_timeout,
                command=config.smtp_command_timeout,
                tls_handshake=config.smtp_command_timeout,
                data_block=config.smtp_data_timeout,
                data_end=config.smtp_data_end_timeout,
            ),
            **overrides,
        }
        return cls(**values)


class DeliveryEngine:
    def __init__(
        self,
        ctx: AppContext,
        settings: DeliverySettings,
        *,
        resolver: Resolver | None = None,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._queue: DeliveryQueue = ctx.store.queue
        self._composer = Composer(ctx)
        self._router = MxRouter(resolver or Resolver(ctx.config.dns_nameservers or None))
        self._pools = PoolDirectory(ctx)
        self._warmup = WarmupGate(ctx.store, wall=wall)
        self._wall = wall
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(
            base_delay=ctx.config.smtp_retry_base_delay,
            max_retries=ctx.config.smtp_max_retries,
            greylist_delay=ctx.config.smtp_greylist_retry_delay,
        )
        self.owner = owner or ctx.node_id
        self._in_flight: dict[str, Message] = {}
        self._capacity = trio.Event()
        self._destinations: dict[DestinationKey, Destination] = {}
        self._outcomes_in, self._outcomes_out = trio.open_memory_channel[DeliveryOutcome](
            max(1, settings.concurrency)
        )
        self._stopping = False
        self._work: trio.Nursery | None = None
        self._metrics = ctx.metrics.delivery

    # -- Service -----------------------------------------------------------

    async def run(self, health: ServiceHealth, *, task_status: trio.TaskStatus[None]) -> None:
        """Deliver until ``ctx.shutdown``; then hand unsent jobs back to the queue."""
        async with trio.open_nursery() as background:
            background.start_soon(self._write_outcomes)
            background.start_soon(self._renew_leases)
            background.start_soon(self._release_expired)
            background.start_soon(self._publish, health)
            task_status.started()
            async with trio.open_nursery() as work:
                self._work = work
                await self._claim_loop(health)
                self._stopping = True
                for destination in self._destinations.values():
                    destination.notify()
            await self._outcomes_in.aclose()
            background.cancel_scope.cancel()
        log.info("delivery stopped", extra={"node": self.owner})

    async def _claim_loop(self, health: ServiceHealth) -> None:
        settings = self._settings
        while not self._ctx.shutdown.is_set():
            free = settings.concurrency - len(self._in_flight)
            if free <= 0:
                await self._wait(self._capacity_event())
                continue
            wakeup = trio.Event()
            self._ctx.queue_wakeup = wakeup
            claimed = await self._queue.claim(
                self.owner,
                limit=min(free, CLAIM_BATCH),
                lease_seconds=settings.lease_seconds,
                now=self._wall(),
            )
            health.beat()
            if not claimed:
                await self._wait(wakeup, timeout=await self._idle_timeout())
                continue
            for message in claimed:
                self._in_flight[message.id] = message
            assert self._work is not None
            self._work.start_soon(self._prepare, claimed)

    async def _idle_timeout(self) -> float:
        """Sleep until the next message is due, at most ``poll_interval`` (other nodes' mail)."""
        next_due = await self._queue.next_due(now=self._wall())
        if next_due is None:
            return self._settings.poll_interval
        return max(0.0, min(self._settings.poll_interval, next_due - self._wall()))

    async def _wait(self, event: trio.Event, timeout: float | None = None) -> None:
        """Wait for ``event`` (or the timeout), returning early on shutdown."""
        async with trio.open_nursery() as nursery:

            async def until(e: trio.Event) -> None:
                await e.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until, event)
            nursery.start_soon(until, self._ctx.shutdown)
            if timeout is not None:
                nursery.cancel_scope.deadline = trio.current_time() + timeout

    def _capacity_event(self) -> trio.Event:
        if self._capacity.is_set():
            self._capacity = trio.Event()
        return self._capacity

    # -- Compose and dispatch ---------------------------------------------

    async def _prepare(self, messages: Sequence[Message]) -> None:
        now = self._wall()
        jobs: list[Job] = []
        for message in messages:
            composed = await self._composer.compose_or_fail(message, now=now)
            if composed is None:
                self._metrics.outcomes.labels("failed").inc()
                self._release([message.id])
                continue
            key = await self._pools.destination_for(message.recipient, composed.ip_pool)
            attempt = Attempt(
                message_id=message.id,
                tenant_id=message.tenant_id,
                recipient=message.recipient,
                x_message_id=message.request_id,
                attempts_before=message.attempts,
            )
            jobs.append(Job(message, composed, attempt, key, composed.sender_domain))
        if not jobs:
            return
        await self._queue.advance(
            self.owner, [j.message.id for j in jobs], MessageStatus.RENDERED, now=now
        )
        admitted: list[Job] = []
        for job in jobs:
            hold = await self._warmup.hold(job.sender_domain, job.key.pool, now=now)
            if hold is None:
                admitted.append(job)
            else:
                await self._postpone([job], hold.until, hold.reason)
        for job in admitted:
            self._destination(job.key).add([job])
        for key in {job.key for job in admitted}:
            self._start_workers(self._destinations[key])

    def _destination(self, key: DestinationKey) -> Destination:
        destination = self._destinations.get(key)
        if destination is None:
            destination = Destination(
                key,
                max_connections=self._settings.destination_connections,
                rate=TokenBucket(self._settings.destination_rate),
                sources=self._pools.sources(key.pool),
            )
            self._destinations[key] = destination
        return destination

    def _start_workers(self, destination: Destination) -> None:
        assert self._work is not None
        while destination.needs_worker():
            destination.workers += 1
            self._work.start_soon(self._worker, destination)

    # -- Sending -----------------------------------------------------------

    async def _worker(self, dest: Destination) -> None:
        """Send ``dest``'s jobs over one connection, reconnecting as needed."""
        conn: Connected | None = None
        sent = 0
        try:
            while True:
                jobs = dest.take(JOBS_PER_TAKE)
                if not jobs:
                    if self._stopping:
                        return
                    dest.idle_workers += 1
                    try:
                        with trio.move_on_after(IDLE_CONNECTION_SECONDS):
                            await dest.wait_changed()
                    finally:
                        dest.idle_workers -= 1
                    if not dest.pending:
                        return
                    continue
                now = self._wall()
                if self._stopping or dest.backoff.is_held(now):
                    await self._hold_back(dest, jobs, now)
                    continue
                await self._queue.advance(
                    self.owner, [j.message.id for j in jobs], MessageStatus.SENDING, now=now
                )
                for index, job in enumerate(jobs):
                    now = self._wall()
                    if self._stopping or dest.backoff.is_held(now):
                        await self._hold_back(dest, jobs[index:], now)
                        break
                    if (
                        conn is None
                        or not conn.connection.usable
                        or (sent >= self._settings.messages_per_connection)
                    ):
                        if conn is not None:
                            await self._close(dest, conn)
                            conn = None
                        try:
                            conn = await self._connect(dest)
                        except DestinationUnreachable as exc:
                            await self._unreachable(dest, jobs[index:], exc)
                            break
                        sent = 0
                    await dest.rate.acquire()
                    if not await self._send(dest, conn, job):
                        await self._close(dest, conn)
                        conn = None
                    sent += 1
        finally:
            dest.workers -= 1
            if conn is not None:
                await self._close(dest, conn)
            if is_idle(dest) and dest.backoff.held_until <= self._wall():
                self._destinations.pop(dest.key, None)

    async def _connect(self, dest: Destination) -> Connected:
        key = dest.key
        source = dest.next_source()
        started = trio.current_time()
        if key.kind == "relay":
            relay = await self._pools.relay(key.name)
            connected = await connect_relay(
                relay,
                helo_name=self._settings.helo_name,
                source_address=source,
                timeouts=self._settings.timeouts,
            )
        elif key.kind == "capture":
            connected = connect_capture(self._ctx.store.captures, wall=self._wall)
        else:
            connected = await connect_mx(
                self._router,
                key.name,
                port=self._settings.smtp_port,
                helo_name=self._settings.helo_name,
                source_address=source,
                timeouts=self._settings.timeouts,
            )
        dest.connections += 1
        self._metrics.connections.inc()
        self._metrics.connect_seconds.observe(trio.current_time() - started)
        return connected

    async def _close(self, dest: Destination, conn: Connected) -> None:
        dest.connections -= 1
        self._metrics.connections.dec()
        with trio.CancelScope(shield=True):
            await conn.connection.quit()

    async def _send(self, dest: Destination, conn: Connected, job: Job) -> bool:
        """One transaction for one message; returns whether the connection is still good."""
        composed, attempt, route = job.composed, job.attempt, conn.route
        now = self._wall()
        reusable = True
        started = trio.current_time()
        try:
            result = await conn.connection.send(job)
        except MessageTooBig as exc:
            outcome = self._failed(attempt, str(exc), route, permanent=True, status="5.3.4")
        except LocalRefusal as exc:  # e.g. SMTPUTF8 needed but not offered
            outcome = self._failed(attempt, str(exc), route, permanent=True, status="5.6.7")
        except SmtpSessionError as exc:
            outcome = self._failed(attempt, str(exc), route, permanent=False, status="4.4.2")
            dest.last_error = str(exc)
            reusable = False
        else:
            reply = result.reply_for(composed.recipient) or result.failure
            self._metrics.transaction_seconds.observe(trio.current_time() - started)
            if result.delivered and composed.recipient in result.accepted:
                assert result.message_reply is not None
                outcome = delivered(attempt, result.message_reply, route, now=now)
                dest.backoff.on_success()
            elif reply is None:
                outcome = self._failed(
                    attempt, "the server gave no verdict", route, permanent=False, status="4.4.2"
                )
            else:
                outcome = refused(
                    attempt, reply, route, policy=self._policy, rng=self._rng, now=now
                )
                if is_throttling(reply):
                    until = dest.backoff.on_throttled(now)
                    log.info(
                        "destination asked us to slow down",
                        extra={
                            "destination": dest.key.label(),
                            "until": until,
                            "reply": str(reply),
                        },
                    )
                dest.last_error = str(reply)
        if outcome.status is MessageStatus.DELIVERED:
            dest.delivered += 1
        else:
            dest.failed += 1
        await self._settle(outcome)
        return reusable and conn.connection.usable

    def _failed(
        self,
        attempt: Attempt,
        description: str,
        route: Route | None,
        *,
        permanent: bool,
        status: str,
    ) -> DeliveryOutcome:
        return failed(
            attempt,
            description,
            route,
            permanent=permanent,
            status=status,
            policy=self._policy,
            rng=self._rng,
            now=self._wall(),
        )

    async def _unreachable(
        self, dest: Destination, jobs: Sequence[Job], exc: DestinationUnreachable
    ) -> None:
        """No connection: every job waiting for this destination gets the same failure."""
        dest.last_error = exc.description
        now = self._wall()
        if not exc.permanent:
            dest.backoff.on_throttled(now)
        log.warning(
            "destination unreachable",
            extra={"destination": dest.key.label(), "error": exc.description},
        )
        for job in [*jobs, *dest.take_all()]:
            dest.failed += 1
            await self._settle(
                self._failed(
                    job.attempt, exc.description, None, permanent=exc.permanent, status=exc.status
                )
            )

    async def _hold_back(self, dest: Destination, jobs: Sequence[Job], now: float) -> None:
        """Put jobs (and the destination's waiting ones) back in the queue, no attempt counted."""
        waiting = [*jobs, *dest.take_all()]
        if self._stopping:
            await self._postpone(waiting, now, "the node was shutting down; queued again")
            return
        until = dest.backoff.held_until
        await self._postpone(
            waiting,
            until,
            f"{dest.key.label()} asked us to slow down ({dest.last_error}); "
            f"the next attempt waits until {time.strftime('%H:%M:%S', time.gmtime(until))} UTC",
        )

    async def _postpone(self, jobs: Sequence[Job], until: float, reason: str) -> None:
        ids = [j.message.id for j in jobs]
        if not ids:
            return
        with trio.CancelScope(shield=True):
            await self._queue.postpone(
                self.owner, ids, due_at=until, reason=reason, now=self._wall()
            )
        self._metrics.outcomes.labels("postponed").inc(len(ids))
        self._release(ids)
        self._ctx.wake_delivery()

    # -- Outcomes, leases, figures -----------------------------------------

    async def _settle(self, outcome: DeliveryOutcome) -> None:
        await self._outcomes_in.send(outcome)

    def _release(self, ids: Sequence[str]) -> None:
        for message_id in ids:
            self._in_flight.pop(message_id, None)
        self._capacity.set()

    async def _write_outcomes(self) -> None:
        async for first in self._outcomes_out:
            batch = [first]
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._outcomes_out.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self._record(batch)

    async def _record(self, batch: list[DeliveryOutcome]) -> None:
        """Record a batch, retrying while the store is down: an outcome is never dropped."""
        delay = 0.5
        while True:
            try:
                with trio.CancelScope(shield=True):
                    await self._queue.record(batch, now=self._wall())
                    await self._warmup.flush()
                break
            except Exception:
                log.exception(
                    "recording delivery outcomes failed; retrying", extra={"count": len(batch)}
                )
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
        now = self._wall()
        for outcome in batch:
            self._metrics.outcomes.labels(outcome.status.value.lower()).inc()
            message = self._in_flight.get(outcome.message_id)
            if outcome.status is MessageStatus.DELIVERED and message is not None:
                self._metrics.latency.observe(max(0.0, now - message.created_at))
            log.info(
                "delivery attempt",
                extra={
                    "message_id": outcome.message_id,
                    "x_message_id": outcome.event_data.get("x_message_id"),
                    "status": outcome.status.value,
                    "attempts": outcome.attempts,
                    "reply": outcome.last_reply,
                },
            )
        self._release([o.message_id for o in batch])
        if any(o.status is MessageStatus.DEFERRED for o in batch):
            self._ctx.wake_delivery()  # the claim loop's sleep must end by their due time

    async def _renew_leases(self) -> None:
        interval = self._settings.lease_seconds / 3
        while True:
            await trio.sleep(interval)
            ids = list(self._in_flight)
            if ids:
                now = self._wall()
                await self._queue.extend_leases(
                    self.owner, ids, until=now + self._settings.lease_seconds, now=now
                )

    async def _release_expired(self) -> None:
        while True:
            released = await self._queue.release_expired(now=self._wall())
            if released:
                log.warning(
                    "requeued messages whose node stopped renewing its lease",
                    extra={"count": len(released), "message_ids": released[:20]},
                )
                self._ctx.wake_delivery()
            await trio.sleep(min(REAP_INTERVAL, self._settings.lease_seconds / 2))

    async def _publish(self, health: ServiceHealth) -> None:
        while True:
            now = self._wall()
            depth = await self._queue.depth(now=now)
            self._metrics.queue_due.set(depth.due)
            self._metrics.queue_scheduled.set(depth.scheduled)
            self._metrics.queue_in_flight.set(depth.in_flight)
            self._metrics.oldest_due_age.set(depth.oldest_due_age or 0.0)
            held = sum(1 for d in self._destinations.values() if d.backoff.is_held(now))
            self._metrics.destinations_held.set(held)
            health.beat(
                queue={
                    "due": depth.due,
                    "scheduled": depth.scheduled,
                    "in_flight": depth.in_flight,
                    "oldest_due_age_seconds": depth.oldest_due_age,
                },
                in_flight_here=len(self._in_flight),
                destinations={
                    d.key.label(): d.snapshot(now)
                    for d in sorted(self._destinations.values(), key=lambda d: -len(d.pending))[:50]
                },
            )
            await trio.sleep(self._ctx.config.heartbeat_interval)


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    """The supervised delivery service (see ``runner.service_specs``)."""
    engine = DeliveryEngine(ctx, DeliverySettings.from_context(ctx))
    await engine.run(health, task_status=task_status)
