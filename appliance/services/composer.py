"""Compose a queued message for the wire: render, DKIM-sign, VERP envelope.

A forwarded reply (``domain.forwarding``) is not rendered: its bytes as
received get our trace headers, the forwarding domain's DKIM signature and
an SRS envelope sender at the domain's bounce domain.

Used by the delivery engine for every attempt and by ``postyard render``.
Rendering happens here, at delivery time, so queued rows stay small. Parsed
requests and DKIM signers are cached: a 1,000-recipient request is parsed
once, a domain's key is decrypted and loaded once.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Generic, TypeVar

import trio

from appliance.context import AppContext
from appliance.domain.forwarding import (
    ForwardPayload,
    ForwardPayloadError,
    decode_forward,
    forwarded_message,
    srs_sender,
)
from appliance.domain.link_tracking import TrackingLinks
from appliance.domain.rendering import RenderTarget, TemplateSource, render_message
from appliance.domain.send_request import SendRequest
from appliance.domain.send_validation import parse_send_request
from appliance.domain.tracking_tokens import (
    TRACKING_KEY_PURPOSE,
    UNSUBSCRIBE_KEY_PURPOSE,
    click_token,
    open_token,
    unsubscribe_token,
)
from appliance.protocols.dkim_signer import DkimMessageError, DkimSigner
from appliance.services.acceptance import sending_domain
from appliance.store.domains import Domain, signing_material
from appliance.store.messages import Message

log = logging.getLogger("appliance.composer")

DOMAIN_CACHE_SECONDS = 5.0  # a deactivated or deleted domain stops signing within this


class ComposeError(Exception):
    """The message cannot be composed; the text says what and where (becomes error_message)."""


@dataclass(frozen=True, slots=True)
class ComposedMessage:
    message_id: str
    envelope_from: str
    recipient: str
    data: bytes  # signed RFC 5322 message, CRLF line endings
    sender_domain: str  # the verified sending domain that signed it
    ip_pool: str | None  # the send request's ip_pool_name


def verp_address(message_id: str, bounce_domain: str) -> str:
    """``bounces+<message id>@<bounce domain>``: any DSN names the message it is about."""
    return f"bounces+{message_id}@{bounce_domain}"


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class Composer:
    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._requests: _Lru[str, SendRequest] = _Lru(256)
        self._signers: _Lru[tuple[str, str], DkimSigner] = _Lru(512)
        self._domains: _Lru[tuple[str, str], tuple[float, Domain | None]] = _Lru(1024)
        self._unsubscribe_secret = ctx.secrets.derive(UNSUBSCRIBE_KEY_PURPOSE)
        self._tracking_secret = ctx.secrets.derive(TRACKING_KEY_PURPOSE)
        self._srs_secret = ctx.secrets.derive("srs")

    async def compose(self, message: Message, *, now: float) -> ComposedMessage:
        store = self._ctx.store
        request = await self._request(message)
        if isinstance(request, ForwardPayload):
            return await self._compose_forward(message, request, now=now)
        sender_domain = request.from_for(message.personalization).email.rpartition("@")[2]
        domain = await self._sending_domain(message.tenant_id, sender_domain.lower())
        if domain is None:
            raise ComposeError(
                f"sender domain {sender_domain} is not verified or not active any more: "
                "verify it under /api/admin/domains, then retry the message"
            )
        template = None
        if request.template_id is not None:
            found = await store.templates.active_version(message.tenant_id, request.template_id)
            if found is None:
                raise ComposeError(
                    f"template {request.template_id} has no active version any more: "
                    "activate one, then retry the message"
                )
            tpl, version = found
            template = TemplateSource(
                dynamic=tpl.generation.value == "dynamic",
                subject=version.subject,
                html=version.html_content,
                plain=version.plain_content,
            )
        base_url = self._ctx.config.base_url
        token = unsubscribe_token(self._unsubscribe_secret, message.id)
        target = RenderTarget(
            message_id=message.id,
            personalization=message.personalization,
            recipient=message.recipient,
            date=datetime.fromtimestamp(now, UTC),
            unsubscribe_url=f"{base_url}/t/u/{token}",
            tracking=self._tracking_links(message.id),
        )
        try:
            body = render_message(request, target, template)
        except ValueError as exc:  # TemplateError and MIME refusals say what and where
            raise ComposeError(str(exc)) from exc
        signer = self._signer(domain.name, domain.dkim.selector, domain)
        signed = signer.sign(body, timestamp=int(now)) + body
        bounce_domain = f"{domain.bounce_subdomain}.{domain.name}"
        return ComposedMessage(
            message.id,
            verp_address(message.id, bounce_domain),
            message.recipient,
            signed,
            sender_domain=domain.name,
            ip_pool=request.ip_pool_name,
        )

    def _tracking_links(self, message_id: str) -> TrackingLinks:
        base_url = self._ctx.config.base_url
        secret = self._tracking_secret

        def click_url(url: str) -> str:
            return f"{base_url}/t/c/{click_token(secret, message_id, url)}"

        return TrackingLinks(f"{base_url}/t/o/{open_token(secret, message_id)}", click_url)

    async def _sending_domain(self, tenant_id: str, name: str) -> Domain | None:
        """The domain if acceptance lets it send, re-read at most every DOMAIN_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._domains.get((tenant_id, name))
        if cached is not None and cached[0] > now:
            return cached[1]
        domain = await sending_domain(self._ctx, tenant_id, name)
        self._domains.put((tenant_id, name), (now + DOMAIN_CACHE_SECONDS, domain))
        return domain

    async def compose_or_fail(self, message: Message, *, now: float) -> ComposedMessage | None:
        """Compose, or make the message FAILED with the reason (never left in PROCESSING)."""
        try:
            return await self.compose(message, now=now)
        except ComposeError as exc:
            await self._ctx.store.messages.fail(
                message.id, reason="render_failed", error_message=str(exc), now=now
            )
            log.warning(
                "message failed to render", extra={"message_id": message.id, "error": str(exc)}
            )
            return None

    async def _compose_forward(
        self, message: Message, forward: ForwardPayload, *, now: float
    ) -> ComposedMessage:
        """The received reply, signed by the domain it was sent to (which relays it)."""
        domain = await self._sending_domain(message.tenant_id, forward.domain.lower())
        if domain is None:
            raise ComposeError(
                f"replies to {forward.domain} cannot be forwarded: the domain is not verified "
                "or not active any more (its DKIM key signs them): verify it under "
                "/api/admin/domains, then retry the message"
            )
        data = forwarded_message(forward)
        signer = self._signer(domain.name, domain.dkim.selector, domain)
        try:  # in a thread: a received message may be tens of megabytes
            signed = await trio.to_thread.run_sync(partial(signer.sign, data, timestamp=int(now)))
        except DkimMessageError as exc:
            raise ComposeError(
                f"the reply cannot be forwarded with a DKIM signature: {exc}"
            ) from exc
        bounce_domain = f"{domain.bounce_subdomain}.{domain.name}"
        envelope_from = srs_sender(
            forward.mail_from, bounce_domain=bounce_domain, secret=self._srs_secret, now=now
        )
        return ComposedMessage(
            message.id,
            verp_address(message.id, bounce_domain) if envelope_from is None else envelope_from,
            message.recipient,
            signed + data,
            sender_domain=domain.name,
            ip_pool=None,
        )

    async def _request(self, message: Message) -> SendRequest | ForwardPayload:
        cached = self._requests.get(message.request_id)
        if cached is not None:
            return cached
        raw = await self._ctx.store.messages.payload(message.request_id)
        if raw is None:
            raise ComposeError(f"the payload of request {message.request_id} is missing")
        body = json.loads(raw)
        try:
            forward = decode_forward(body)
        except ForwardPayloadError as exc:
            raise ComposeError(str(exc)) from exc
        if forward is not None:
            return forward  # not cached: one message per payload, and up to 48 MB
        parsed = parse_send_request(body, now=datetime.fromtimestamp(message.created_at, UTC))
        self._requests.put(message.request_id, parsed)
        return parsed

    def _signer(self, name: str, selector: str, domain: Domain) -> DkimSigner:
        cached = self._signers.get((name, selector))
        if cached is None:
            material = signing_material(domain, self._ctx.secrets)
            cached = DkimSigner(material.domain, material.selector, material.private_key_pem)
            self._signers.put((name, selector), cached)
        return cached
