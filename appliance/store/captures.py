"""The capture mailbox: outbound messages kept instead of delivered (capture mode).

With ``capture_mode`` on, the delivery engine hands every composed message
(the DKIM-signed bytes exactly as they would go on the wire, with the VERP
envelope) to :meth:`Captures.add` instead of an MX host or a relay
(``services.capture_target``). The mailbox is read through
``/api/admin/captures`` and the admin UI.

Every query takes the tenant id: a tenant never reads, counts or deletes
another tenant's captures, whatever id it guesses. Ids are integers that
grow with each capture; lists are newest first, paged by the
``(captured_at, id)`` of the last row of the previous page.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import captured_messages

MAX_ADDRESS = 320  # mail_from / rcpt_to columns


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """A capture without its bytes (see :meth:`Captures.raw`)."""

    id: int
    message_id: str  # the message (msg_…) it was composed for
    tenant_id: str
    mail_from: str  # the envelope sender (VERP bounces+<msg id>@…, or SRS for a forward)
    rcpt_to: str  # the envelope recipient
    subject: str  # decoded Subject header, "" when there is none
    size: int  # bytes of the raw message
    captured_at: float


@dataclass(frozen=True, slots=True)
class CaptureFilter:
    """What a list keeps: an exact recipient (case-insensitive) and/or message id."""

    recipient: str | None = None
    message_id: str | None = None


_SUMMARY_COLUMNS = [c for c in captured_messages.c if c.name != "raw"]


def _capture(row: Any) -> CapturedMessage:
    return CapturedMessage(
        id=int(row.id),
        message_id=row.message_id,
        tenant_id=row.tenant_id,
        mail_from=row.mail_from,
        rcpt_to=row.rcpt_to,
        subject=row.subject,
        size=int(row.size),
        captured_at=float(row.captured_at),
    )


def _conditions(tenant_id: str, filters: CaptureFilter) -> list[sa.ColumnElement[bool]]:
    conds = [captured_messages.c.tenant_id == tenant_id]
    if filters.recipient:
        conds.append(sa.func.lower(captured_messages.c.rcpt_to) == filters.recipient.lower())
    if filters.message_id:
        conds.append(captured_messages.c.message_id == filters.message_id)
    return conds


class Captures:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        tenant_id: str,
        message_id: str,
        mail_from: str,
        rcpt_to: str,
        subject: str,
        raw: bytes,
        now: float,
    ) -> CapturedMessage:
        """Keep one message as it would have gone on the wire; returns the stored capture."""
        sender, recipient = mail_from[:MAX_ADDRESS], rcpt_to[:MAX_ADDRESS]
        row = {
            "message_id": message_id,
            "tenant_id": tenant_id,
            "mail_from": sender,
            "rcpt_to": recipient,
            "subject": subject,
            "size": len(raw),
            "raw": raw,
            "captured_at": now,
        }
        stmt = captured_messages.insert().values(**row).returning(captured_messages.c.id)

        def fn(conn: sa.Connection) -> int:
            return int(conn.execute(stmt).scalar_one())

        capture_id = await self._db.write(fn)
        return CapturedMessage(
            id=capture_id,
            message_id=message_id,
            tenant_id=tenant_id,
            mail_from=sender,
            rcpt_to=recipient,
            subject=subject,
            size=len(raw),
            captured_at=now,
        )

    async def list(
        self,
        tenant_id: str,
        filters: CaptureFilter | None = None,
        *,
        limit: int,
        before: tuple[float, int] | None = None,
    ) -> builtins.list[CapturedMessage]:
        """Newest first; ``before`` is the ``(captured_at, id)`` of the previous page's last row."""
        conds = _conditions(tenant_id, filters or CaptureFilter())
        if before is not None:
            position = sa.tuple_(captured_messages.c.captured_at, captured_messages.c.id)
            conds.append(position < sa.tuple_(*before))
        query = (
            sa.select(*_SUMMARY_COLUMNS)
            .where(*conds)
            .order_by(captured_messages.c.captured_at.desc(), captured_messages.c.id.desc())
            .limit(limit)
        )

        def fn(conn: sa.Connection) -> list[CapturedMessage]:
            return [_capture(r) for r in conn.execute(query).all()]

        return await self._db.read(fn)

    async def count(self, tenant_id: str, filters: CaptureFilter | None = None) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(captured_messages)
            .where(*_conditions(tenant_id, filters or CaptureFilter()))
        )
        return await self._db.read(lambda conn: int(conn.execute(query).scalar_one()))

    async def get(self, tenant_id: str, capture_id: int) -> CapturedMessage | None:
        query = sa.select(*_SUMMARY_COLUMNS).where(
            captured_messages.c.id == capture_id, captured_messages.c.tenant_id == tenant_id
        )

        def fn(conn: sa.Connection) -> CapturedMessage | None:
            row = conn.execute(query).first()
            return _capture(row) if row is not None else None

        return await self._db.read(fn)

    async def raw(self, tenant_id: str, capture_id: int) -> bytes | None:
        """The message exactly as it would have been sent (CRLF line ends, DKIM-signed)."""
        query = sa.select(captured_messages.c.raw).where(
            captured_messages.c.id == capture_id, captured_messages.c.tenant_id == tenant_id
        )

        def fn(conn: sa.Connection) -> bytes | None:
            blob = conn.execute(query).scalar()
            return bytes(blob) if blob is not None else None

        return await self._db.read(fn)

    async def delete(self, tenant_id: str, capture_id: int) -> bool:
        """Delete one capture; False when the tenant has none with this id."""
        stmt = captured_messages.delete().where(
            captured_messages.c.id == capture_id, captured_messages.c.tenant_id == tenant_id
        )
        return await self._db.write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def delete_all(self, tenant_id: str) -> int:
        """Empty the tenant's mailbox; returns how many captures were deleted."""
        stmt = captured_messages.delete().where(captured_messages.c.tenant_id == tenant_id)
        return await self._db.write(lambda conn: int(conn.execute(stmt).rowcount))
