"""Sending domains: one row per domain, its DKIM key and its last DNS check.

Names are unique across the whole appliance (a domain has one owner), so
``create`` refuses a name any tenant holds. Every other query takes the
tenant id: a tenant can never read or change another tenant's domains,
whatever id it guesses.

DKIM private keys are stored encrypted with the secret box (the caller
encrypts; :func:`signing_material` decrypts). A rotation stages the new key
in the ``pending_dkim_*`` columns; :meth:`Domains.record_check` promotes it
once its DNS record verifies, so mail is never signed with an unpublished key.

``verified_at`` is when the domain last became verified. A failed check
clears ``verified`` but keeps ``verified_at``, so "verified: false,
verified_at: yesterday" shows that the records were good and broke since.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from appliance.domain.dkim_keys import DkimAlgorithm
from appliance.domain.ids import new_id
from appliance.domain.secret_box import SecretBox
from appliance.store.changes import ChangeCounter
from appliance.store.database import Database
from appliance.store.schema import domains


class DomainExistsError(Exception):
    """The name is already a sending domain (of this tenant or another)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"domain {name!r} already exists")
        self.name = name


@dataclass(frozen=True, slots=True)
class StoredDkimKey:
    """A DKIM key as stored: the private key is a secret-box token, never plain PEM."""

    selector: str
    algorithm: DkimAlgorithm
    encrypted_private_key: str
    public_txt: str

    def __repr__(self) -> str:  # the token is not the key, but keep logs clean anyway
        return f"StoredDkimKey({self.algorithm.value}, selector={self.selector!r})"


@dataclass(frozen=True, slots=True)
class Domain:
    id: str
    tenant_id: str
    name: str  # lowercased, IDNA A-labels
    is_active: bool
    verified: bool
    verified_at: float | None
    last_checked_at: float | None
    last_check: Mapping[str, Any] | None  # per-record results of the last verification
    ownership_token: str
    bounce_subdomain: str
    dkim: StoredDkimKey
    pending_dkim: StoredDkimKey | None
    created_at: float
    updated_at: float
    warmup_started_at: float | None = None  # warm-up caps rise from this day; None: no caps
    forward_to: str | None = None  # replies to this domain (its MX at us) are forwarded here

    @property
    def can_send(self) -> bool:
        """Mail may be sent from this domain: verified and active."""
        return self.verified and self.is_active


@dataclass(frozen=True, slots=True)
class ForwardingRoute:
    """What the inbound server does with mail for a sending domain (its MX may be us)."""

    domain: str
    tenant_id: str
    forward_to: str | None  # None: refused with 550
    can_send: bool  # verified and active: forwarded mail is signed with its key

    @property
    def forwards(self) -> bool:
        return self.forward_to is not None and self.can_send


@dataclass(frozen=True, slots=True)
class DkimSigningMaterial:
    """What the DKIM signer needs (``protocols.dkim_signer.DkimSigner(domain, selector, pem)``)."""

    domain: str
    selector: str
    algorithm: DkimAlgorithm
    private_key_pem: bytes

    def __repr__(self) -> str:  # never print the private key by accident
        return f"DkimSigningMaterial({self.domain!r}, selector={self.selector!r})"


def signing_material(domain: Domain, secrets: SecretBox) -> DkimSigningMaterial:
    """The current (published and verified) key of ``domain``, decrypted.

    Never the pending key of a rotation: that one signs only after its record
    verifies and :meth:`Domains.record_check` has promoted it. Raises
    ``SecretBoxError`` when the secret key differs from the one that encrypted it.
    """
    return DkimSigningMaterial(
        domain.name,
        domain.dkim.selector,
        domain.dkim.algorithm,
        secrets.decrypt(domain.dkim.encrypted_private_key),
    )


def _pending(row: Any) -> StoredDkimKey | None:
    if row.pending_dkim_selector is None:
        return None
    return StoredDkimKey(
        row.pending_dkim_selector,
        DkimAlgorithm(row.pending_dkim_algorithm),
        row.pending_dkim_private_key,
        row.pending_dkim_public_txt,
    )


def _domain(row: Any) -> Domain:
    return Domain(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        is_active=bool(row.is_active),
        verified=bool(row.verified),
        verified_at=row.verified_at,
        last_checked_at=row.last_checked_at,
        last_check=json.loads(row.last_check) if row.last_check else None,
        ownership_token=row.ownership_token,
        bounce_subdomain=row.bounce_subdomain,
        dkim=StoredDkimKey(
            row.dkim_selector,
            DkimAlgorithm(row.dkim_algorithm),
            row.dkim_private_key,
            row.dkim_public_txt,
        ),
        pending_dkim=_pending(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
        warmup_started_at=row.warmup_started_at,
        forward_to=row.forward_to,
    )


def _select_one(c: sa.Connection, tenant_id: str, domain_id: str) -> Domain | None:
    row = c.execute(
        sa.select(domains).where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
    ).first()
    return _domain(row) if row else None


class Domains:
    def __init__(self, db: Database, changes: ChangeCounter | None = None) -> None:
        self._db = db
        self._changes = changes or ChangeCounter()

    async def create(
        self,
        *,
        tenant_id: str,
        name: str,
        ownership_token: str,
        dkim: StoredDkimKey,
        bounce_subdomain: str = "bounces",
    ) -> Domain:
        """Add a domain (``name`` already normalised); DomainExistsError if any tenant has it."""
        now = time.time()
        domain = Domain(
            id=new_id("dom"),
            tenant_id=tenant_id,
            name=name,
            is_active=True,
            verified=False,
            verified_at=None,
            last_checked_at=None,
            last_check=None,
            ownership_token=ownership_token,
            bounce_subdomain=bounce_subdomain,
            dkim=dkim,
            pending_dkim=None,
            created_at=now,
            updated_at=now,
        )

        def fn(c: sa.Connection) -> Domain:
            if c.execute(sa.select(domains.c.id).where(domains.c.name == name)).first():
                raise DomainExistsError(name)
            try:
                c.execute(
                    domains.insert().values(
                        id=domain.id,
                        tenant_id=tenant_id,
                        name=name,
                        is_active=True,
                        verified=False,
                        ownership_token=ownership_token,
                        bounce_subdomain=bounce_subdomain,
                        dkim_selector=dkim.selector,
                        dkim_algorithm=dkim.algorithm.value,
                        dkim_private_key=dkim.encrypted_private_key,
                        dkim_public_txt=dkim.public_txt,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except sa.exc.IntegrityError as exc:
                # Another node inserted the name between our check and insert.
                if any(m in str(exc.orig) for m in ("domains.name", "uq_domains_name")):
                    raise DomainExistsError(name) from None
                raise
            return domain

        return await self._changes.write(self._db, fn)

    async def get(self, tenant_id: str, domain_id: str) -> Domain | None:
        return await self._db.read(lambda c: _select_one(c, tenant_id, domain_id))

    async def get_by_name(self, name: str) -> Domain | None:
        """The domain called ``name``, whichever tenant owns it (names are unique).

        For routing (inbound bounces, conflict checks); API handlers answering a
        tenant must use :meth:`get` or :meth:`sending_domain`.
        """

        def fn(c: sa.Connection) -> Domain | None:
            row = c.execute(sa.select(domains).where(domains.c.name == name.lower())).first()
            return _domain(row) if row else None

        return await self._db.read(fn)

    async def sending_domain(
        self, tenant_id: str, name: str, *, verified_only: bool = True
    ) -> Domain | None:
        """The tenant's domain ``name`` if mail may be sent from it (verified and active;
        active only with ``verified_only=False``, as in capture mode).

        For the send pipeline (``services.acceptance.sending_domain`` decides which):
        None means 403 "Sender domain not verified".
        """
        conds = [
            domains.c.name == name.lower(),
            domains.c.tenant_id == tenant_id,
            domains.c.is_active.is_(True),
        ]
        if verified_only:
            conds.append(domains.c.verified.is_(True))

        def fn(c: sa.Connection) -> Domain | None:
            row = c.execute(sa.select(domains).where(*conds)).first()
            return _domain(row) if row else None

        return await self._db.read(fn)

    async def for_tenant(self, tenant_id: str) -> list[Domain]:
        def fn(c: sa.Connection) -> list[Domain]:
            query = (
                sa.select(domains)
                .where(domains.c.tenant_id == tenant_id)
                .order_by(domains.c.name, domains.c.id)
            )
            return [_domain(r) for r in c.execute(query).all()]

        return await self._db.read(fn)

    async def bounce_domains(self) -> dict[str, str]:
        """``<bounce subdomain>.<domain>`` of every domain (active or not, since mail
        sent before a domain was turned off can still bounce) → its tenant id."""

        def fn(c: sa.Connection) -> dict[str, str]:
            query = sa.select(domains.c.bounce_subdomain, domains.c.name, domains.c.tenant_id)
            return {f"{sub}.{name}".lower(): tenant for sub, name, tenant in c.execute(query).all()}

        return await self._db.read(fn)

    async def forwarding_routes(self) -> dict[str, ForwardingRoute]:
        """Every domain name → how the inbound server treats mail addressed to it."""

        def fn(c: sa.Connection) -> dict[str, ForwardingRoute]:
            query = sa.select(
                domains.c.name,
                domains.c.tenant_id,
                domains.c.forward_to,
                domains.c.verified,
                domains.c.is_active,
            )
            return {
                name.lower(): ForwardingRoute(
                    name.lower(), tenant, forward_to, bool(verified) and bool(active)
                )
                for name, tenant, forward_to, verified, active in c.execute(query).all()
            }

        return await self._db.read(fn)

    async def set_active(self, tenant_id: str, domain_id: str, is_active: bool) -> Domain | None:
        def fn(c: sa.Connection) -> Domain | None:
            c.execute(
                domains.update()
                .where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
                .values(is_active=is_active, updated_at=time.time())
            )
            return _select_one(c, tenant_id, domain_id)

        return await self._changes.write(self._db, fn)

    async def set_warmup(
        self, tenant_id: str, domain_id: str, started_at: float | None
    ) -> Domain | None:
        """Start warm-up caps from ``started_at`` (Unix seconds), or turn them off (None)."""
        return await self._set(tenant_id, domain_id, warmup_started_at=started_at)

    async def set_forward_to(
        self, tenant_id: str, domain_id: str, forward_to: str | None
    ) -> Domain | None:
        """Forward replies to the domain to ``forward_to`` (normalised address), or stop (None)."""
        return await self._set(tenant_id, domain_id, forward_to=forward_to)

    async def _set(self, tenant_id: str, domain_id: str, **values: object) -> Domain | None:
        def fn(c: sa.Connection) -> Domain | None:
            c.execute(
                domains.update()
                .where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
                .values(**values, updated_at=time.time())
            )
            return _select_one(c, tenant_id, domain_id)

        return await self._changes.write(self._db, fn)

    async def record_check(
        self,
        tenant_id: str,
        domain_id: str,
        *,
        verified: bool,
        result: Mapping[str, Any],
        promote_selector: str | None = None,
        checked_at: float | None = None,
    ) -> Domain | None:
        """Store a verification: its per-record ``result`` (JSON-able) and the verdict.

        ``promote_selector``: the pending key with this selector had its record
        verified; it becomes the current key (only if it is still the pending
        one, so a rotation staged meanwhile is never promoted unchecked).
        """
        now = time.time() if checked_at is None else checked_at

        def fn(c: sa.Connection) -> Domain | None:
            current = _select_one(c, tenant_id, domain_id)
            if current is None:
                return None
            values: dict[str, object] = {
                "verified": verified,
                "last_checked_at": now,
                "last_check": json.dumps(result),
                "updated_at": now,
            }
            if verified and not current.verified:
                values["verified_at"] = now
            pending = current.pending_dkim
            if (
                promote_selector is not None
                and pending is not None
                and pending.selector == promote_selector
            ):
                values.update(_promote(pending))
            c.execute(
                domains.update()
                .where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
                .values(**values)
            )
            return _select_one(c, tenant_id, domain_id)

        return await self._changes.write(self._db, fn)

    async def stage_dkim(self, tenant_id: str, domain_id: str, key: StoredDkimKey) -> Domain | None:
        """Stage ``key`` as the pending key (replacing any earlier pending one)."""

        def fn(c: sa.Connection) -> Domain | None:
            c.execute(
                domains.update()
                .where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
                .values(
                    pending_dkim_selector=key.selector,
                    pending_dkim_algorithm=key.algorithm.value,
                    pending_dkim_private_key=key.encrypted_private_key,
                    pending_dkim_public_txt=key.public_txt,
                    updated_at=time.time(),
                )
            )
            return _select_one(c, tenant_id, domain_id)

        return await self._changes.write(self._db, fn)

    async def promote_dkim(self, tenant_id: str, domain_id: str) -> Domain | None:
        """Make the pending key the current one now (no-op without a pending key)."""

        def fn(c: sa.Connection) -> Domain | None:
            current = _select_one(c, tenant_id, domain_id)
            if current is None or current.pending_dkim is None:
                return current
            c.execute(
                domains.update()
                .where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
                .values(**_promote(current.pending_dkim), updated_at=time.time())
            )
            return _select_one(c, tenant_id, domain_id)

        return await self._changes.write(self._db, fn)

    async def delete(self, tenant_id: str, domain_id: str) -> bool:
        def fn(c: sa.Connection) -> bool:
            result = c.execute(
                domains.delete().where(domains.c.id == domain_id, domains.c.tenant_id == tenant_id)
            )
            return result.rowcount == 1

        return await self._changes.write(self._db, fn)


def _promote(pending: StoredDkimKey) -> dict[str, object]:
    return {
        "dkim_selector": pending.selector,
        "dkim_algorithm": pending.algorithm.value,
        "dkim_private_key": pending.encrypted_private_key,
        "dkim_public_txt": pending.public_txt,
        "pending_dkim_selector": None,
        "pending_dkim_algorithm": None,
        "pending_dkim_private_key": None,
        "pending_dkim_public_txt": None,
    }
