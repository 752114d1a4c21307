"""Reply forwarding, the inbound side: which recipients are forwarded, and queueing them.

Mail for a sending domain (``support@sender.test``) is taken only when the
domain has a ``forward_to`` address and may send (verified and active);
otherwise it is refused with ``550 5.7.1`` in the conversation. The only
destination is ``forward_to``, whatever the recipient's local part says, so
this can never relay to anybody else.

At the end of DATA :class:`ReplyForwarder` queues one message per forwarding
domain to its ``forward_to`` through the normal delivery engine
(``domain.forwarding``: the stored payload and the plan), wakes the engine,
and answers ``250``; if the store fails, ``451 4.3.0`` so the sender retries.
The composer sends it DKIM-signed by the domain with an SRS envelope sender.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Final

from appliance.context import AppContext
from appliance.domain.forwarding import (
    MAX_FORWARDS,
    ForwardPayload,
    forward_hops,
    plan_forward,
    received_header,
)
from appliance.domain.ids import new_id
from appliance.net.smtp_server import SmtpSession
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import MessageData
from appliance.store.domains import ForwardingRoute

log = logging.getLogger("appliance.inbound")

FORWARD_FAILED: Final = Reply.build(
    451, "4.3.0", "The message could not be queued for forwarding just now; please try again later"
)


def route_refusal(address: str, route: ForwardingRoute) -> Reply | None:
    """None when mail to ``address`` (at ``route.domain``) is forwarded, else why not (550)."""
    if route.forward_to is None:
        return Reply.build(
            550,
            "5.7.1",
            f"<{address}>: relay access denied: {route.domain} takes no mail here (no "
            "forwarding address is set for it)",
        )
    if not route.can_send:
        return Reply.build(
            550,
            "5.7.1",
            f"<{address}>: relay access denied: forwarding for {route.domain} is off while "
            "the domain is not verified and active",
        )
    return None


def loop_refusal(data: bytes) -> Reply | None:
    """``550 5.4.6`` for a message that went round our forwarding too often (a loop)."""
    hops = forward_hops(data)
    if len(hops) <= MAX_FORWARDS:
        return None
    domains = ", ".join(dict.fromkeys(h[:64] for h in hops if h.isascii() and h.isprintable()))
    return Reply.build(
        550,
        "5.4.6",
        f"Forwarding loop: this message was already forwarded {len(hops)} times by this "
        f"service ({domains}); a forward_to address leads back here",
    )


@dataclasses.dataclass
class ForwardingStatistics:
    forwards_queued: int = 0
    forwards_failed: int = 0
    """Messages answered 451 because they could not be queued."""
    forward_loops_refused: int = 0


class ReplyForwarder:
    """Queue received mail to the forwarding addresses; shared by all connections."""

    def __init__(self, ctx: AppContext, *, hostname: str) -> None:
        self._ctx = ctx
        self._hostname = hostname
        self.statistics = ForwardingStatistics()

    def loop_refusal(self, session: SmtpSession, message: MessageData) -> Reply | None:
        """The ``550 5.4.6`` for a looping message (checked before anything is stored)."""
        refusal = loop_refusal(message.data)
        if refusal is not None:
            self.statistics.forward_loops_refused += 1
            log.warning(
                "forwarding loop refused",
                extra={
                    "peer_host": session.peer_host,
                    "envelope_to": list(message.envelope.recipients),
                },
            )
        return refusal

    async def forward(
        self, session: SmtpSession, message: MessageData, routes: Mapping[str, ForwardingRoute]
    ) -> Reply:
        """Queue ``message`` once per domain of ``routes`` (recipient → its route);
        :meth:`loop_refusal` must have passed it."""
        by_domain: dict[str, list[str]] = {}
        for recipient, route in routes.items():
            by_domain.setdefault(route.domain, []).append(recipient)
        queued: list[str] = []
        try:
            for recipients in by_domain.values():
                queued.append(
                    await self._queue(session, message, routes[recipients[0]], recipients)
                )
        except Exception:
            self.statistics.forwards_failed += 1
            log.exception(
                "a message to forward could not be queued; the sender was asked to retry",
                extra={"peer_host": session.peer_host, "envelope_to": list(routes)},
            )
            return FORWARD_FAILED
        finally:
            if queued:
                self._ctx.wake_delivery()
        self.statistics.forwards_queued += len(queued)
        return Reply.build(250, "2.0.0", f"Queued for forwarding as {' '.join(queued)}")

    async def _queue(
        self,
        session: SmtpSession,
        message: MessageData,
        route: ForwardingRoute,
        recipients: list[str],
    ) -> str:
        assert route.forward_to is not None  # routes hold forwarding routes only
        now = time.time()
        request_id = new_id("req", now=now)
        payload = ForwardPayload(
            domain=route.domain,
            mail_from=message.envelope.mail_from,
            recipients=tuple(recipients),
            received=received_header(
                helo=session.helo_name,
                peer_host=session.peer_host,
                hostname=self._hostname,
                tls=session.tls,
                request_id=request_id,
                now=now,
            ),
            raw=message.data,
        )
        plan = plan_forward(payload, forward_to=route.forward_to, request_id=request_id, now=now)
        # Suppressions are not checked: forward_to is the tenant's own mailbox.
        await self._ctx.store.messages.accept(
            tenant_id=route.tenant_id,
            plan=plan,
            payload=payload.encode(),
            category=None,
            batch_id=None,
            now=now,
        )
        log.info(
            "reply queued for forwarding",
            extra={
                "x_message_id": request_id,
                "message_id": plan.messages[0].id,
                "tenant_id": route.tenant_id,
                "domain": route.domain,
                "envelope_to": recipients,
                "peer_host": session.peer_host,
            },
        )
        return request_id
