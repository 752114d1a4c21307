"""The webhook dispatcher: POST each webhook's pending events, signed, until taken.

One supervised service per node. Every ``poll_interval`` it starts a worker
for each enabled webhook that has none; a worker loops:

1. re-read the webhook (a PATCH takes effect at the next batch; turned off:
   the worker ends);
2. take up to ``batch_size`` due outbox rows, oldest first (one batch in
   flight per webhook, so a receiver sees events in order);
3. POST them as a JSON array (our format or SendGrid's), signed like
   SendGrid's signed Event Webhook when the webhook is signed, with a
   30 s timeout, TLS verified, redirects not followed;
4. 2xx: the rows are deleted. Anything else: the rows come back after
   ``retry_base`` seconds, doubling per attempt, at most ``retry_max``; once
   the failures have lasted ``disable_after`` the webhook is disabled
   (``disabled_at``) and a ``webhook_disabled`` event is appended. Its rows
   stay: ``PATCH {"enabled": true}`` resumes from where delivery stopped.

Every POST is recorded in ``webhook_deliveries``. Delivery is at least once:
a receiver should de-duplicate by ``event_id`` / ``sg_event_id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from appliance.context import AppContext
from appliance.domain.secret_box import SecretBox, SecretBoxError
from appliance.domain.webhook_payloads import batch_items, encode_batch, sample_payloads
from appliance.domain.webhook_signing import SigningKeyError, sign
from appliance.health import ServiceHealth
from appliance.net.guarded_http import GuardedTransport
from appliance.store.webhooks import OutboxItem, Webhook

log = logging.getLogger("appliance.webhooks")

SNIPPET_CHARS = 500
MAX_BATCH_BYTES = 768 * 1024  # SendGrid's batch bound; a larger batch is split
USER_AGENT = "Postyard-Webhook/1"
REDIRECT_HELP = "redirects are not followed; point the webhook at the final URL"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    batch_size: int = 100
    timeout: float = 30.0
    retry_base: float = 30.0
    retry_max: float = 3600.0
    disable_after: float = 86400.0
    poll_interval: float = 2.0
    heartbeat_interval: float = 5.0
    allow_link_local: bool = False  # config webhook_allow_link_local

    @classmethod
    def from_context(cls, ctx: AppContext, **overrides: Any) -> WebhookSettings:
        values: dict[str, Any] = {
            "disable_after": ctx.config.webhook_disable_after,
            "heartbeat_interval": ctx.config.heartbeat_interval,
            "allow_link_local": ctx.config.webhook_allow_link_local,
            **overrides,
        }
        return cls(**values)


def retry_delay(attempts: int, settings: WebhookSettings) -> float:
    """Wait before the next try after ``attempts`` failed ones (30 s, 60 s, … at most 1 h)."""
    return float(min(settings.retry_base * 2 ** min(max(attempts - 1, 0), 30), settings.retry_max))


@dataclass(frozen=True, slots=True)
class PostResult:
    status_code: int | None
    latency_ms: float
    error: str | None  # None: taken (2xx)
    response_snippet: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def open_client(timeout: float, *, allow_link_local: bool = False) -> httpx.AsyncClient:
    """The client for webhook POSTs: it will not connect to link-local or metadata addresses
    (``net/guarded_http.py``) unless ``allow_link_local``."""
    return httpx.AsyncClient(
        follow_redirects=False,
        verify=True,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
        transport=None if allow_link_local else GuardedTransport(verify=True),
    )


async def post_batch(
    client: httpx.AsyncClient, hook: Webhook, body: bytes, *, secrets: SecretBox, now: float
) -> PostResult:
    """POST ``body`` to the webhook; the outcome with a sentence that says what went wrong."""
    headers = {"Content-Type": "application/json"}
    started = trio.current_time()
    if hook.signed and hook.signing_private_key:
        try:
            headers.update(sign(secrets.decrypt(hook.signing_private_key), int(now), body))
        except (SecretBoxError, SigningKeyError) as exc:
            error = f"cannot sign the batch ({exc}); PATCH the webhook with signed false, then true"
            return PostResult(None, _ms(started), error, None)
    try:
        response = await client.post(hook.url, content=body, headers=headers)
    except httpx.TimeoutException:
        error = f"no answer from {hook.url} within {client.timeout.read or 0:g} s"
        return PostResult(None, _ms(started), error, None)
    except httpx.HTTPError as exc:
        error = f"cannot POST to {hook.url}: {type(exc).__name__}: {exc or 'no detail'}"
        return PostResult(None, _ms(started), error, None)
    snippet = response.text[:SNIPPET_CHARS]
    status = response.status_code
    if 200 <= status < 300:
        return PostResult(status, _ms(started), None, snippet)
    if 300 <= status < 400:
        where = response.headers.get("location")
        target = f" to {where}" if where else ""
        error = f"receiver answered {status} (redirect{target}): {REDIRECT_HELP}"
    else:
        error = f"receiver answered {status}; only a 2xx answer counts as delivered"
    return PostResult(status, _ms(started), error, snippet)


def _ms(started: float) -> float:
    return round((trio.current_time() - started) * 1000, 3)


def batch_body(hook: Webhook, items: Sequence[OutboxItem]) -> bytes | None:
    """The bytes to POST for these rows, or None when the webhook's format takes none of them."""
    origins = {i.event.message_id: i.origin for i in items if i.event.message_id and i.origin}
    payload = batch_items(hook.format, [i.event.payload() for i in items], origins)
    return encode_batch(payload) if payload else None


async def send_test(
    ctx: AppContext, hook: Webhook, *, now: float | None = None, record: bool = True
) -> PostResult:
    """POST a sample batch to the webhook now (enabled or not); recorded as a test attempt."""
    now = time.time() if now is None else now
    body = encode_batch(batch_items(hook.format, sample_payloads(hook.tenant_id, now)))
    settings = WebhookSettings.from_context(ctx)
    async with open_client(settings.timeout, allow_link_local=settings.allow_link_local) as client:
        result = await post_batch(client, hook, body, secrets=ctx.secrets, now=now)
    if not record:
        return result
    await ctx.store.webhooks.record_attempt(
        hook.id,
        attempted_at=now,
        events=2,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        error=result.error,
        response_snippet=result.response_snippet,
        test=True,
    )
    return result


class WebhookDispatcher:
    def __init__(
        self,
        ctx: AppContext,
        settings: WebhookSettings,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._ctx = ctx
        self._store = ctx.store.webhooks
        self._settings = settings
        self._wall = wall
        self._workers: set[str] = set()

    async def run(self, health: ServiceHealth, *, task_status: trio.TaskStatus[None]) -> None:
        client = open_client(
            self._settings.timeout, allow_link_local=self._settings.allow_link_local
        )
        async with client, trio.open_nursery() as nursery:
            nursery.start_soon(self._publish, health)
            task_status.started()
            while not self._ctx.shutdown.is_set():
                for hook in await self._store.list():
                    if hook.enabled and hook.id not in self._workers:
                        self._workers.add(hook.id)
                        nursery.start_soon(self._worker, client, hook.id)
                health.beat()
                await self._sleep(self._settings.poll_interval)
            nursery.cancel_scope.cancel()  # the heartbeat; workers have seen the shutdown
        log.info("webhook dispatcher stopped")

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on shutdown."""
        with trio.move_on_after(max(0.0, seconds)):
            await self._ctx.shutdown.wait()

    async def _worker(self, client: httpx.AsyncClient, webhook_id: str) -> None:
        try:
            while not self._ctx.shutdown.is_set():
                hook = await self._store.find(webhook_id)
                if hook is None or not hook.enabled:
                    return
                now = self._wall()
                items = await self._store.due(hook.id, self._settings.batch_size, now)
                if items:
                    await self._deliver(client, hook, items, now)
                    continue
                next_due = await self._store.next_due(hook.id)
                wait = self._settings.poll_interval
                if next_due is not None:
                    wait = min(wait, next_due - self._wall())
                await self._sleep(wait)
        except Exception:
            log.exception("webhook worker failed", extra={"webhook_id": webhook_id})
            raise
        finally:
            self._workers.discard(webhook_id)

    async def _deliver(
        self, client: httpx.AsyncClient, hook: Webhook, items: Sequence[OutboxItem], now: float
    ) -> None:
        claimed = items
        body = batch_body(hook, items)
        while body is not None and len(body) > MAX_BATCH_BYTES and len(items) > 1:
            items = items[: len(items) // 2]
            body = batch_body(hook, items)
        await self._store.release([i.id for i in claimed[len(items) :]], now)  # the next batch
        ids = [i.id for i in items]
        if body is None:  # e.g. our own alerts to a SendGrid-format webhook
            await self._store.delete_delivered(ids)
            return
        result = await post_batch(client, hook, body, secrets=self._ctx.secrets, now=now)
        await self._store.record_attempt(
            hook.id,
            attempted_at=now,
            events=len(items),
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_snippet=result.response_snippet,
        )
        if result.ok:
            await self._store.delete_delivered(ids)
            if hook.failing_since is not None:
                await self._store.set_failing_since(hook.id, None)
            return
        assert result.error is not None
        since = hook.failing_since if hook.failing_since is not None else now
        if hook.failing_since is None:
            await self._store.set_failing_since(hook.id, now)
        if now - since >= self._settings.disable_after:
            reason = (
                f"deliveries failed for {(now - since) / 3600:.1f} h; last error: {result.error}. "
                'Fix the receiver, then PATCH the webhook with {"enabled": true}: '
                "pending events are sent from where delivery stopped"
            )
            await self._store.disable(hook.id, reason=reason, now=now)
            log.warning(
                "webhook disabled after sustained failure",
                extra={"webhook_id": hook.id, "url": hook.url, "error": result.error},
            )
            return
        attempts = max(i.attempts for i in items) + 1
        await self._store.reschedule(ids, now + retry_delay(attempts, self._settings), result.error)
        log.info(
            "webhook delivery failed; will retry",
            extra={"webhook_id": hook.id, "error": result.error, "attempts": attempts},
        )

    async def _publish(self, health: ServiceHealth) -> None:
        while True:
            pending = await self._store.pending()
            hooks = await self._store.list()
            health.beat(
                webhooks={
                    h.id: {
                        "pending": pending.get(h.id, 0),
                        "enabled": h.enabled,
                        "failing_since": h.failing_since,
                        "disabled_at": h.disabled_at,
                    }
                    for h in hooks[:200]
                },
                workers=len(self._workers),
            )
            await trio.sleep(self._settings.heartbeat_interval)


async def run(
    ctx: AppContext, health: ServiceHealth, *, task_status: trio.TaskStatus[None]
) -> None:
    """The supervised webhook service (see ``runner.service_specs``)."""
    dispatcher = WebhookDispatcher(ctx, WebhookSettings.from_context(ctx))
    await dispatcher.run(health, task_status=task_status)
