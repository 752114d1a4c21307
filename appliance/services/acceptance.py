"""Mail acceptance: the one pipeline behind ``POST /v3/mail/send`` and SMTP submission.

A send request is accepted in named steps (Postal's processor reads the same
way): the tenant may send, the body keeps SendGrid's rules, every sender
domain is verified (:func:`sending_domain`; not needed in capture mode),
template and batch exist, sending limits allow it, the queue has room; then
one message per (personalization, recipient) is planned (``domain.acceptance``:
suppressed recipients dropped) and written with its first event in one
transaction, and the delivery engine is woken.

A step that refuses raises an :class:`AcceptanceError` subclass (or the
:class:`SendValidationError` of the body rules); each front door words it its
own way: the HTTP API in SendGrid's JSON errors, submission as SMTP replies.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from appliance.auth import AuthFailure
from appliance.context import AppContext
from appliance.domain.acceptance import GROUP_UNSUBSCRIBES, plan_acceptance, suppression_key
from appliance.domain.ids import new_id
from appliance.domain.send_request import SendRequest, TemplateKind
from appliance.domain.send_validation import parse_send_request
from appliance.domain.warmup import WarmupSchedule, utc_day
from appliance.store.database import StoreError
from appliance.store.domains import Domain
from appliance.store.messages import first_category

log = logging.getLogger("appliance.acceptance")

TEMPLATE_ID_HELP: Final = (
    "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.template_id"
)
BATCH_ID_HELP: Final = (
    "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.batch_id"
)
QUEUE_RECOUNT_SECONDS: Final = 5.0
QUEUE_RECOUNT_FRACTION: Final = 0.9  # recount at once when the estimate passes this share


async def sending_domain(ctx: AppContext, tenant_id: str, name: str) -> Domain | None:
    """The tenant's domain ``name`` if mail may be sent from it; None: "not verified".

    The one rule, for both front doors and the composer: the domain must be
    active and its DNS records verified. In capture mode an active domain may
    send before they verify: mail never leaves the box (it is kept in the
    capture mailbox), and a newcomer should send within minutes of install.
    """
    return await ctx.store.domains.sending_domain(
        tenant_id, name, verified_only=not ctx.config.capture_mode
    )


class AcceptanceError(Exception):
    """A send refused by a rule the sender can act on; ``str()`` says what to do."""


class TenantSuspended(AcceptanceError):
    def __init__(self, reason: str | None) -> None:
        text = AuthFailure.TENANT_SUSPENDED.value
        super().__init__(f"{text} ({reason})" if reason else text)
        self.reason = reason


class SenderDomainNotVerified(AcceptanceError):
    def __init__(self, domain: str) -> None:
        super().__init__(
            f"Sender domain {domain} is not a verified sending domain of this account: verify it "
            "under /api/admin/domains (POST …/{id}/verify) and keep it active"
        )
        self.domain = domain


@dataclass(frozen=True, slots=True)
class ReferenceProblem:
    message: str
    field: str
    help: str | None = None


class InvalidReferences(AcceptanceError):
    """template_id or batch_id name nothing usable of this tenant."""

    def __init__(self, problems: list[ReferenceProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = tuple(problems)


class SendingLimitExceeded(AcceptanceError):
    """A rate or warm-up cap refuses the send for now (HTTP 429, SMTP 451 4.7.1)."""


class QueueFull(AcceptanceError):
    def __init__(self, waiting: int, limit: int) -> None:
        super().__init__(
            f"Queue full: {waiting} messages are waiting for delivery (max_queued_messages = "
            f"{limit}); retry later"
        )
        self.waiting = waiting
        self.limit = limit


class StoreUnavailable(AcceptanceError):
    """The store failed during acceptance (the StoreError is the ``__cause__``); nothing
    or everything of the request was written (one transaction), so a retry is safe."""

    def __init__(self, error: StoreError) -> None:
        super().__init__(f"Temporary failure of the message store ({error}); retry later")
        self.error = error


@dataclass(frozen=True, slots=True)
class Accepted:
    request_id: str
    """The X-Message-Id (``req_…``) of the request."""
    messages: int
    dropped: int
    sandbox: bool = False
    """Valid and not stored (SendGrid's sandbox mode)."""


async def check_sending_limits(
    ctx: AppContext, tenant_id: str, mail: SendRequest, *, now: float
) -> None:
    """Warm-up caps at acceptance (SPEC: over the cap the API answers 429, SMTP 451 4.7.1).

    A sending domain or IP pool that is warming up may send the day's cap
    (``domain.warmup``); once today's count of sent messages has reached it,
    new requests are refused until the next UTC day. Messages accepted before
    the cap was reached are held back at delivery (``services.warmup_gate``).
    """
    del tenant_id
    schedule = WarmupSchedule()
    day = utc_day(now)
    scopes: dict[str, float] = {}
    for name in {
        mail.from_for(i).email.rpartition("@")[2].lower() for i in range(len(mail.personalizations))
    }:
        domain = await ctx.store.domains.get_by_name(name)
        if domain is not None and domain.warmup_started_at is not None:
            scopes[f"domain:{name}"] = domain.warmup_started_at
    if mail.ip_pool_name:
        pool = await ctx.store.ip_pools.get_by_name(mail.ip_pool_name)
        if pool is not None and pool.warmup_started_at is not None:
            scopes[f"pool:{pool.name}"] = pool.warmup_started_at
    if not scopes:
        return
    sent = await ctx.store.send_counters.counts(list(scopes), day)
    for scope, started in scopes.items():
        cap = schedule.cap(started, now)
        if cap is not None and sent.get(scope, 0) >= cap:
            kind, _, name = scope.partition(":")
            day_number = schedule.day(started, now)
            raise SendingLimitExceeded(
                f"Warm-up limit reached: {kind} {name} is on day {day_number} of its warm-up and "
                f"has sent today's cap of {cap} messages; sending resumes at 00:00 UTC "
                "(PATCH /api/admin/domains/{id} or /api/admin/ip_pools/{name} with "
                '{"warmup": false} lifts the cap)'
            )


class _QueueGauge:
    """Messages waiting for delivery against ``max_queued_messages``, without a COUNT per
    request: the count is re-read every few seconds, and at once when the last count
    plus what this node accepted since comes near the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counted: int | None = None
        self._counted_at = 0.0
        self._added = 0

    async def check(self, ctx: AppContext) -> None:
        if self.limit <= 0:
            return
        now = time.monotonic()
        estimate = None if self._counted is None else self._counted + self._added
        if (
            estimate is None
            or estimate >= self.limit * QUEUE_RECOUNT_FRACTION
            or now - self._counted_at >= QUEUE_RECOUNT_SECONDS
        ):
            self._counted = await ctx.store.messages.waiting_count()
            self._counted_at = now
            self._added = 0
            estimate = self._counted
        if estimate >= self.limit:
            raise QueueFull(estimate, self.limit)

    def added(self, count: int) -> None:
        self._added += count


class MailAcceptance:
    """The acceptance pipeline of one appliance (one per front door is fine)."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._queue = _QueueGauge(ctx.config.max_queued_messages)

    async def accept(
        self,
        tenant_id: str,
        body: object,
        *,
        payload: bytes,
        request_id: str | None = None,
        now: float | None = None,
    ) -> Accepted:
        """Accept the decoded mail/send ``body`` (``payload`` is its JSON text, stored as is).

        Raises SendValidationError (the body breaks SendGrid's rules) or an
        AcceptanceError; returns what was accepted.
        """
        now = time.time() if now is None else now
        try:
            return await self._accept(tenant_id, body, payload, request_id, now)
        except StoreError as exc:
            log.warning("acceptance failed in the store", extra={"error": str(exc)})
            raise StoreUnavailable(exc) from exc

    async def _accept(
        self, tenant_id: str, body: object, payload: bytes, request_id: str | None, now: float
    ) -> Accepted:
        ctx = self._ctx
        await self._check_tenant(tenant_id)
        mail = parse_send_request(body, now=datetime.fromtimestamp(now, UTC))
        await self._check_sender_domains(tenant_id, mail)
        await self._check_references(tenant_id, mail)
        request_id = request_id or new_id("req", now=now)
        if mail.is_sandbox:
            return Accepted(request_id, 0, 0, sandbox=True)
        await check_sending_limits(ctx, tenant_id, mail, now=now)
        await self._queue.check(ctx)

        keys = {suppression_key(r.address.email) for r in mail.recipients()}
        suppressed = await ctx.store.suppressions.lists_for(tenant_id, keys)
        if mail.asm is not None:
            in_group = await ctx.store.asm_groups.suppressed(tenant_id, mail.asm.group_id, keys)
            for key in in_group:
                suppressed[key] = suppressed.get(key, frozenset()) | {GROUP_UNSUBSCRIBES}
        plan = plan_acceptance(mail, request_id=request_id, suppressed=suppressed, now=now)
        await ctx.store.messages.accept(
            tenant_id=tenant_id,
            plan=plan,
            payload=payload,
            category=first_category(mail.categories),
            batch_id=mail.batch_id,
            now=now,
        )
        self._queue.added(len(plan.messages) - plan.dropped)
        ctx.wake_delivery()
        log.info(
            "mail accepted",
            extra={
                "x_message_id": request_id,
                "messages": len(plan.messages),
                "dropped": plan.dropped,
            },
        )
        return Accepted(request_id, len(plan.messages), plan.dropped)

    async def _check_tenant(self, tenant_id: str) -> None:
        tenant = await self._ctx.store.tenants.get(tenant_id)
        if tenant is None or not tenant.is_active:
            raise TenantSuspended(tenant.suspended_reason if tenant else "account deleted")

    async def _check_sender_domains(self, tenant_id: str, mail: SendRequest) -> None:
        senders = {mail.from_address.email} | {
            mail.from_for(i).email for i in range(len(mail.personalizations))
        }
        for email in sorted(senders):
            domain = email.rpartition("@")[2].lower()
            if await sending_domain(self._ctx, tenant_id, domain) is None:
                raise SenderDomainNotVerified(domain)

    async def _check_references(self, tenant_id: str, mail: SendRequest) -> None:
        store = self._ctx.store
        problems: list[ReferenceProblem] = []
        if mail.template_id is not None:
            found = await store.templates.active_version(tenant_id, mail.template_id)
            if found is None:
                problems.append(
                    ReferenceProblem(
                        "The template_id is not a valid template ID.",
                        "template_id",
                        TEMPLATE_ID_HELP,
                    )
                )
            elif (mail.template_kind is TemplateKind.DYNAMIC) != (
                found[0].generation.value == "dynamic"
            ):
                problems.append(
                    ReferenceProblem(
                        "template_id does not match the template's generation", "template_id"
                    )
                )
        if mail.batch_id is not None and not await store.batches.exists(tenant_id, mail.batch_id):
            problems.append(
                ReferenceProblem(
                    "The batch id is not valid: create one with POST /v3/mail/batch",
                    "batch_id",
                    BATCH_ID_HELP,
                )
            )
        if problems:
            raise InvalidReferences(problems)
