"""Capture mode's delivery target: the built-in mailbox instead of MX hosts and relays.

With ``capture_mode`` on, ``PoolDirectory`` routes every message to the one
``capture`` destination and its "connection" is a :class:`CaptureTransport`:
it keeps the composed message (the DKIM-signed bytes and VERP envelope that
would have gone on the wire) in ``store.captures`` and answers like a
receiving server, ``250 2.0.0 captured by postyard (capture mode)``. The
engine then records the outcome as for any delivery (DELIVERED, a
``delivered`` event: stats, webhooks and the live feed see it). No DNS
lookup, no connection: a staging box sends without DNS or an internet link.

A store failure is answered ``451 4.3.0``: the message is deferred and
tried again by the retry schedule, as with a receiver out of disk space.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.domain.captured_mail import subject_of
from appliance.domain.delivery_outcome import Route
from appliance.protocols.smtp_client_outcome import RecipientResult, Step, TransactionResult
from appliance.protocols.smtp_reply import Reply
from appliance.services.delivery_targets import Connected
from appliance.services.destination import Job
from appliance.store.captures import Captures
from appliance.store.database import StoreError

log = logging.getLogger("appliance.delivery")

CAPTURED = Reply.build(250, "2.0.0", "captured by postyard (capture mode)")
ROUTE = Route(mx_host=None, ip=None, tls=False, relay=None)
_OK = Reply.build(250, "2.1.0", "OK")
_GO_AHEAD = Reply.build(354, None, "go ahead")


class CaptureTransport:
    """Keeps each job's message in the capture mailbox of its tenant."""

    def __init__(self, captures: Captures, *, wall: Callable[[], float]) -> None:
        self._captures = captures
        self._wall = wall

    @property
    def usable(self) -> bool:
        return True

    async def send(self, job: Job) -> TransactionResult:
        composed = job.composed
        try:
            await self._captures.add(
                tenant_id=job.message.tenant_id,
                message_id=composed.message_id,
                mail_from=composed.envelope_from,
                rcpt_to=composed.recipient,
                subject=subject_of(composed.data),
                raw=composed.data,
                now=self._wall(),
            )
        except StoreError as exc:
            log.warning(
                "the capture mailbox could not keep a message; it will be tried again",
                extra={"message_id": composed.message_id, "error": str(exc)},
            )
            verdict = Reply.build(
                451, "4.3.0", f"the capture mailbox could not keep the message: {exc}"
            )
            return _result(job, verdict, failed=True)
        return _result(job, CAPTURED, failed=False)

    async def quit(self) -> None:
        return None


def connect_capture(captures: Captures, *, wall: Callable[[], float]) -> Connected:
    return Connected(CaptureTransport(captures, wall=wall), ROUTE)


def _result(job: Job, verdict: Reply, *, failed: bool) -> TransactionResult:
    composed = job.composed
    return TransactionResult(
        envelope_from=composed.envelope_from,
        recipients=(RecipientResult(composed.recipient, _OK),),
        mail_reply=_OK,
        data_reply=_GO_AHEAD,
        message_reply=verdict,
        failed_step=Step.DATA if failed else None,
    )
