"""What SMTP submission decides, command by command: the :class:`SmtpPolicy` of port 587.

AUTH takes the username ``apikey`` and an API key with ``mail.send`` as
password; MAIL needs a verified sending domain of the key's tenant; RCPT of
a suppressed address is refused; at end of DATA the message becomes a
SendGrid mail/send body (``domain.submitted_mail``) and goes through the
acceptance pipeline shared with the HTTP API (``services.acceptance``).

Replies are the ones users of hosted relays know (seed 001): ``535 5.7.8``
bad credentials, ``451 4.7.1`` rate or warm-up limit, ``451 4.4.2`` queue
full or store trouble, ``452 4.3.1`` store full (no space left), ``550
5.1.0`` sender domain not allowed, ``550 5.7.1`` recipient suppressed,
``521`` tenant suspended (closes the connection), ``550 5.6.0`` a message
that cannot be sent as it is. Each transaction gets its request id
(``req_…``, the X-Message-Id) at MAIL, bound to the log lines of the
connection.
"""

from __future__ import annotations

import json
import logging
import math
import textwrap
import time
from typing import Final

from appliance import logs
from appliance.api.rate_limit import RateLimiter
from appliance.auth import AuthFailure, Principal
from appliance.context import AppContext
from appliance.domain.acceptance import DROP_MESSAGES, DROP_REASONS, drop_reason
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.domain.ids import new_id
from appliance.domain.send_errors import SendValidationError
from appliance.domain.send_request import MailSettings
from appliance.domain.submitted_mail import SubmittedMailError, submission_body
from appliance.net.smtp_server import SmtpSession
from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import AuthAttempt, Helo, MailFrom, MessageData, RcptTo
from appliance.services.acceptance import (
    AcceptanceError,
    MailAcceptance,
    QueueFull,
    SenderDomainNotVerified,
    SendingLimitExceeded,
    StoreUnavailable,
    TenantSuspended,
    sending_domain,
)
from appliance.store.database import StoreError, StoreFull

log = logging.getLogger("appliance.submission")

USERNAME: Final = "apikey"
SCOPE: Final = "mail.send"
REPLY_LINE: Final = 400  # characters of text per reply line (RFC 5321 allows 512 octets)
REPLY_LINES: Final = 6

AUTH_USERNAME = Reply.build(
    535, "5.7.8", "Authentication credentials invalid: the username must be apikey"
)
AUTH_INVALID = Reply.build(
    535,
    "5.7.8",
    "Authentication credentials invalid: log in with the username apikey and an API key "
    "(SG.…) as password",
)
AUTH_NO_SCOPE = Reply.build(
    535,
    "5.7.8",
    "Authentication credentials invalid: this API key lacks the mail.send scope; add it with "
    "PUT /v3/api_keys/{api_key_id} or use another key",
)
AUTH_UNAVAILABLE = Reply.build(
    454, "4.7.0", "Temporary authentication failure: the key store is unavailable; retry later"
)
KEY_REVOKED = Reply.build(
    530,
    "5.7.0",
    "The API key of this session is no longer valid for mail.send: reconnect and log in "
    "with a valid key",
)
SENDER_REQUIRED = Reply.build(
    550, "5.1.0", "A sender address is required: MAIL FROM:<you@your-verified-domain>"
)
STORE_UNAVAILABLE = Reply.build(451, "4.4.2", "Temporary failure of the message store; retry later")


def reply(code: int, enhanced: str, text: str) -> Reply:
    """A reply with ``text`` on as many short lines as it needs (CR, LF and NUL removed)."""
    text = " ".join(text.translate({0: " ", 10: " ", 13: " "}).split())
    lines = textwrap.wrap(text, REPLY_LINE, break_on_hyphens=False) or [""]
    if len(lines) > REPLY_LINES:
        lines = [*lines[: REPLY_LINES - 1], lines[REPLY_LINES - 1][: REPLY_LINE - 1] + "…"]
    return Reply.build(code, enhanced, *lines)


def suspended(exc: TenantSuspended | None = None) -> Reply:
    return reply(521, "5.7.1", str(exc) if exc else AuthFailure.TENANT_SUSPENDED.value)


def refused_message(exc: SubmittedMailError | SendValidationError) -> Reply:
    if isinstance(exc, SubmittedMailError):
        return reply(550, "5.6.0", f"Message refused: {exc}")
    problems = "; ".join(f"{e.message} ({e.field})" if e.field else e.message for e in exc.errors)
    return reply(550, "5.6.0", f"Message refused: {problems}")


def acceptance_reply(exc: AcceptanceError) -> Reply:
    """The SMTP answer to a send the pipeline refused."""
    if isinstance(exc, TenantSuspended):
        return suspended(exc)
    if isinstance(exc, SenderDomainNotVerified):
        return reply(550, "5.1.0", str(exc))
    if isinstance(exc, SendingLimitExceeded):
        return reply(451, "4.7.1", str(exc))
    if isinstance(exc, StoreUnavailable) and isinstance(exc.error, StoreFull):
        return reply(452, "4.3.1", f"Insufficient system storage: {exc.error}")
    if isinstance(exc, QueueFull | StoreUnavailable):
        return reply(451, "4.4.2", str(exc))
    return reply(550, "5.6.0", f"Message refused: {exc}")  # InvalidReferences


class SubmissionPolicy:
    """One client connection's decisions; made per connection by the submission service."""

    def __init__(self, ctx: AppContext, acceptance: MailAcceptance, limiter: RateLimiter) -> None:
        self._ctx = ctx
        self._acceptance = acceptance
        self._limiter = limiter
        self._principal: Principal | None = None
        self._secret: str | None = None  # the key, re-checked for every transaction
        self._request_id: str | None = None

    async def on_connect(self, session: SmtpSession) -> Reply | None:
        logs.bind(service="submission", smtp_connection_id=session.connection_id)
        return None

    async def on_helo(self, session: SmtpSession, helo: Helo) -> Reply | None:
        return None

    async def on_auth(self, session: SmtpSession, attempt: AuthAttempt) -> Reply | None:
        if attempt.username != USERNAME:
            refusal: Reply | None = AUTH_USERNAME
        else:
            try:
                refusal = await self._login(attempt.password)
            except StoreError as exc:
                log.warning("submission login: store unavailable", extra={"error": str(exc)})
                return AUTH_UNAVAILABLE
        if refusal is not None:
            log.info("submission login refused", extra={"smtp_reply": str(refusal)})
        return refusal

    async def _login(self, secret: str) -> Reply | None:
        result = await self._ctx.authenticator.authenticate(secret)
        if result is AuthFailure.TENANT_SUSPENDED:
            return suspended()
        if isinstance(result, AuthFailure):
            return AUTH_INVALID
        if not result.has(SCOPE):
            return AUTH_NO_SCOPE
        self._principal, self._secret = result, secret
        logs.bind(tenant_id=result.tenant_id, api_key_id=result.key_id)
        return None

    async def on_mail(self, session: SmtpSession, mail: MailFrom) -> Reply | None:
        try:
            return await self._mail(mail)
        except StoreError as exc:
            log.warning("submission MAIL: store unavailable", extra={"error": str(exc)})
            return STORE_UNAVAILABLE

    async def _mail(self, mail: MailFrom) -> Reply | None:
        # The key may have been revoked or its tenant suspended since AUTH (cached check).
        result = await self._ctx.authenticator.authenticate(self._secret)
        if result is AuthFailure.TENANT_SUSPENDED:
            return suspended()
        if isinstance(result, AuthFailure) or not result.has(SCOPE):
            return KEY_REVOKED
        self._principal = result
        now = time.time()
        decision = self._limiter.hit(result.key_id, now=now)
        if not decision.allowed:
            wait = max(math.ceil(decision.reset_at - now), 1)
            return reply(
                451,
                "4.7.1",
                f"Rate limit exceeded: this API key may start {decision.limit} messages per "
                f"{self._limiter.window:g} s; retry in {wait} s",
            )
        if not mail.address:
            return SENDER_REQUIRED
        try:
            sender = parse_address(mail.address)
        except InvalidAddressError:
            return R.BAD_SENDER_ADDRESS
        if await sending_domain(self._ctx, result.tenant_id, sender.domain) is None:
            return reply(550, "5.1.0", str(SenderDomainNotVerified(sender.domain)))
        self._request_id = new_id("req", now=now)
        logs.bind(request_id=self._request_id)
        return None

    async def on_rcpt(self, session: SmtpSession, rcpt: RcptTo) -> Reply | None:
        principal = self._principal
        assert principal is not None  # the core asks only after AUTH and MAIL
        try:
            address = parse_address(rcpt.address)
        except InvalidAddressError:
            return R.BAD_RECIPIENT_ADDRESS
        try:
            lists = await self._ctx.store.suppressions.lists_for(principal.tenant_id, [address.key])
        except StoreError as exc:
            log.warning("submission RCPT: store unavailable", extra={"error": str(exc)})
            return STORE_UNAVAILABLE
        reason = drop_reason(lists.get(address.key, frozenset()), MailSettings())
        if reason is None:
            return None
        list_name = next(name for name, (r, _) in DROP_REASONS.items() if r == reason)
        return reply(
            550,
            "5.7.1",
            f"Recipient suppressed: {address} is on this account's {list_name} list "
            f"({DROP_MESSAGES[reason]}); remove it from the list to send to it",
        )

    async def on_data(self, session: SmtpSession, message: MessageData) -> Reply | None:
        principal = self._principal
        assert principal is not None
        envelope = message.envelope
        request_id, self._request_id = self._request_id or new_id("req"), None
        try:
            body = submission_body(
                message.data, mail_from=envelope.mail_from, recipients=envelope.recipients
            )
        except SubmittedMailError as exc:
            return refused_message(exc)
        payload = json.dumps(body, separators=(",", ":")).encode("ascii")
        try:
            accepted = await self._acceptance.accept(
                principal.tenant_id, body, payload=payload, request_id=request_id
            )
        except SendValidationError as exc:
            return refused_message(exc)
        except AcceptanceError as exc:
            return acceptance_reply(exc)
        return Reply.build(250, "2.0.0", f"Ok: queued as {accepted.request_id}")
