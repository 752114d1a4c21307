"""An inbound report in the store without an SMTP conversation, for pages that list them."""

from __future__ import annotations

import time

from appliance.domain.bounce_report import parse_bounce
from appliance.domain.inbound_outcome import MatchKey
from appliance.store.inbound_reports import IncomingReport, RecordedReport
from tests.support.appliance import RunningAppliance

USER_UNKNOWN_DSN = (
    b"From: MAILER-DAEMON@mx1.example.org\r\n"
    b"To: bounces@bounces.example.test\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
    b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx1.example.org\r\n\r\n"
    b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: User unknown\r\n"
    b"--b--\r\n"
)
"""A DSN of a hard bounce (5.1.1) for gone@example.org, as Postfix writes one."""


async def record_report(
    app: RunningAppliance,
    raw: bytes = USER_UNKNOWN_DSN,
    *,
    envelope_to: str,
    tenant_id: str | None,
    keys: tuple[MatchKey, ...] = (),
) -> RecordedReport:
    """Parse ``raw`` and keep it as the inbound server does after the SMTP conversation
    (``keys``: what it matched the report by, e.g. the VERP address)."""
    return await app.ctx.store.inbound_reports.record(
        IncomingReport(
            received_at=time.time(),
            remote_ip="127.0.0.1",
            envelope_from="",
            envelope_to=(envelope_to,),
            report=parse_bounce(raw),
            raw=raw,
            keys=keys,
            envelope_tenant_id=tenant_id,
        )
    )
