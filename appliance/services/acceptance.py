"""Mail acceptance: the one pipeline behind ``POST /v3/mail/send`` and SMTP submission.

A send request is accepted in named steps (Postal's processor reads the same
way): the tenant may send, the body keeps SendGrid's rules, every sender
domain is verified (:func:`sending_domain`; not needed in capture mode),
template and batch exist, sending limits allow it, the queue has room; then
one message per (personalization, recipient) is planned (``domain.acceptance``:
suppressed recipients dropped) and written with its first event in one
transaction (shared with the requests accepted at the same moment:
``services.accept_batch``), and the delivery engine is woken.

The tenant's status and the sending domains are read by every request and
change rarely: :class:`SendingRulesCache` keeps them for
``sending_rules_cache_ttl`` seconds (5 s). A write to tenants or domains made
in this process (API, reputation guard) makes every entry stale at once; one
made on another node applies there within the TTL.

A step that refuses raises an :class:`AcceptanceError` subclass (or the
:class:`SendValidationError` of the body rules); each front door words it its
own way: the HTTP API in SendGrid's JSON errors, submission as SMTP replies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

from appliance.auth import AuthFailure
from appliance.context import AppContext
from appliance.domain.acceptance import AcceptancePlan, plan_acceptance, suppression_key
from appliance.domain.ids import new_id
from appliance.domain.send_request import SendRequest, TemplateKind
from appliance.domain.send_validation import parse_send_request
from appliance.domain.warmup import WarmupSchedule, utc_day
from appliance.services.accept_batch import AcceptBatcher
from appliance.store.database import StoreError
from appliance.store.domains import Domain
from appliance.store.messages import PlannedAccept, first_category
from appliance.store.tenants import Tenant

log = logging.getLogger("appliance.acceptance")

TEMPLATE_ID_HELP: Final = (
    "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.template_id"
)
BATCH_ID_HELP: Final = (
    "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.batch_id"
)
QUEUE_RECOUNT_SECONDS: Final = 5.0
QUEUE_RECOUNT_FRACTION: Final = 0.9  # recount at once when the estimate passes this share
RULES_CACHE_ENTRIES: Final = 10_000  # past this, the cache starts over (tenants × domains)

K = TypeVar("K")
V = TypeVar("V")


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


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    version: int  # store.sending_rule_changes when the read began
    expires: float  # time.monotonic()


class SendingRulesCache:
    """The tenant and its sending domains as acceptance reads them, per node, for ``ttl`` s.

    An entry is used only while it is younger than ``ttl`` and no write to tenants or
    domains happened in this process since its read began, so a tenant suspended or a
    domain deactivated here is refused by the next request; ``ttl=0`` reads every time.
    """

    def __init__(self, ctx: AppContext, *, ttl: float) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._tenants: dict[str, _Entry[Tenant | None]] = {}
        self._domains: dict[tuple[str, str], _Entry[Domain | None]] = {}

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return await self._lookup(
            self._tenants, tenant_id, lambda: self._ctx.store.tenants.get(tenant_id)
        )

    async def sending_domain(self, tenant_id: str, name: str) -> Domain | None:
        """:func:`sending_domain`, cached."""
        return await self._lookup(
            self._domains, (tenant_id, name), lambda: sending_domain(self._ctx, tenant_id, name)
        )

    async def _lookup(
        self, table: dict[K, _Entry[V]], key: K, read: Callable[[], Awaitable[V]]
    ) -> V:
        changes = self._ctx.store.sending_rule_changes
        entry = table.get(key)
        fresh = entry is not None and entry.version == changes.value
        if entry is not None and fresh and entry.expires > time.monotonic():
            return entry.value
        version = changes.value
        value = await read()
        if self._ttl > 0:
            if len(table) >= RULES_CACHE_ENTRIES:
                table.clear()
            table[key] = _Entry(value, version, time.monotonic() + self._ttl)
        return value


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
    ctx: AppContext,
    tenant_id: str,
    mail: SendRequest,
    *,
    now: float,
    domains: Mapping[str, Domain] | None = None,
) -> None:
    """Warm-up caps at acceptance (SPEC: over the cap the API answers 429, SMTP 451 4.7.1).

    A sending domain or IP pool that is warming up may send the day's cap
    (``domain.warmup``); once today's count of sent messages has reached it,
    new requests are refused until the next UTC day. Messages accepted before
    the cap was reached are held back at delivery (``services.warmup_gate``).
    ``domains``: sender domains already read (name → row); the others are read here.
    """
    del tenant_id
    schedule = WarmupSchedule()
    day = utc_day(now)
    scopes: dict[str, float] = {}
    for name in {
        mail.from_for(i).email.rpartition("@")[2].lower() for i in range(len(mail.personalizations))
    }:
        known = domains.get(name) if domains is not None else None
        domain = known if known is not None else await ctx.store.domains.get_by_name(name)
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
        self._rules = SendingRulesCache(ctx, ttl=ctx.config.sending_rules_cache_ttl)
        self._writes = AcceptBatcher(ctx.store.messages)  # group commit of concurrent requests

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
        senders = await self._check_sender_domains(tenant_id, mail)
        await self._check_references(tenant_id, mail)
        request_id = request_id or new_id("req", now=now)
        if mail.is_sandbox:
            return Accepted(request_id, 0, 0, sandbox=True)
        await check_sending_limits(ctx, tenant_id, mail, now=now, domains=senders)
        await self._queue.check(ctx)

        keys = frozenset(suppression_key(r.address.email) for r in mail.recipients())
        planned = request_id

        def make_plan(suppressed: Mapping[str, frozenset[str]]) -> AcceptancePlan:
            return plan_acceptance(mail, request_id=planned, suppressed=suppressed, now=now)

        # The suppression lists are read, the plan made and written in one transaction.
        group = mail.asm.group_id if mail.asm is not None else None
        category = first_category(mail.categories)
        write = PlannedAccept(
            tenant_id, keys, group, make_plan, payload, category, mail.batch_id, now
        )
        plan = await self._writes.write(write)
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
        tenant = await self._rules.tenant(tenant_id)
        if tenant is None or not tenant.is_active:
            raise TenantSuspended(tenant.suspended_reason if tenant else "account deleted")

    async def _check_sender_domains(self, tenant_id: str, mail: SendRequest) -> dict[str, Domain]:
        """Every sender domain may send; returns them by name."""
        senders = {mail.from_address.email} | {
            mail.from_for(i).email for i in range(len(mail.personalizations))
        }
        found: dict[str, Domain] = {}
        for email in sorted(senders):
            name = email.rpartition("@")[2].lower()
            if name in found:
                continue
            domain = await self._rules.sending_domain(tenant_id, name)
            if domain is None:
                raise SenderDomainNotVerified(name)
            found[name] = domain
        return found

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
