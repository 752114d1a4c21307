"""``/api/admin/domains``: a tenant's sending domains, their DNS records and verification.

A domain gets a DKIM key pair (RSA-2048 unless ``"algorithm": "ed25519"``),
an ownership token and a return-path subdomain; ``GET …/dns-records`` says
exactly what to publish and ``POST …/verify`` looks the records up (through
``appliance.net.dns`` and ``POSTYARD_DNS_NAMESERVERS``) and says, per
record, found / missing / wrong / unknown and what to fix.

Rotation: ``POST …/rotate-dkim`` stages a new key under a new selector. The
current key keeps signing until a verification finds the new record, which
then promotes the new key. Lookup failures (timeouts, SERVFAIL) never
un-verify a verified domain: only records seen missing or wrong do.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from typing import Any

import trio
from pydantic import BaseModel, Field, StrictBool
from quart import Blueprint
from quart_schema import tag

from appliance.api.authz import app_ctx, principal, requires
from appliance.api.errors import ApiError, bad_request
from appliance.api.request_body import json_body, json_object
from appliance.config import Config
from appliance.domain.dkim_keys import DkimAlgorithm, generate_key_pair, new_selector
from appliance.domain.dns_records import (
    DEFAULT_RETURN_PATH_LABEL,
    DnsRecord,
    RecordCheck,
    RecordKind,
    RecordStatus,
    check_records,
    lookups_needed,
)
from appliance.domain.email_address import InvalidAddressError, parse_address
from appliance.net.dns import DnsConfigError, Resolver, init_dns_backend
from appliance.services.domain_records import SpfNotConfigured, records_for, spf_terms
from appliance.store.domains import Domain, DomainExistsError, StoredDkimKey

blueprint = Blueprint("domains", __name__, url_prefix="/api/admin/domains")

ALGORITHMS = {"rsa": DkimAlgorithm.RSA_SHA256, "ed25519": DkimAlgorithm.ED25519_SHA256}
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# The longest record host is "<selector>._domainkey.<domain>"; selectors have 14 characters.
_MAX_NAME = 253 - len("py20260512a3f9._domainkey.")


class CreateDomain(BaseModel):
    domain: str = Field(min_length=1, max_length=300)
    algorithm: str = "rsa"
    bounce_subdomain: str | None = None


class UpdateDomain(BaseModel):
    is_active: StrictBool | None = None
    warmup: StrictBool | None = None  # true: warm-up caps from now (if not on yet); false: off
    forward_to: str | None = None  # where replies to the domain go; null: nowhere


# ---------------------------------------------------------------- validation


def normalize_domain_name(text: str) -> str:
    """Lowercased IDNA A-label form of a host name, or a 400 naming the field ``domain``."""
    name = text.strip()
    name = name[:-1] if name.endswith(".") else name
    try:
        ascii_name = parse_address(f"postmaster@{name}").domain
    except InvalidAddressError as exc:
        raise bad_request(
            f"{text!r} is not a valid domain name: {exc.detail}",
            "domain",
            "give the domain you send from, such as example.com or mail.example.com",
        ) from None
    if len(ascii_name) > _MAX_NAME:
        raise bad_request(
            f"domain name is too long: {len(ascii_name)} characters, at most {_MAX_NAME} to "
            "leave room for the DKIM record host <selector>._domainkey.<domain>",
            "domain",
        )
    return ascii_name


def _algorithm(value: str) -> DkimAlgorithm:
    algorithm = ALGORITHMS.get(value.strip().lower())
    if algorithm is None:
        raise bad_request("algorithm must be rsa or ed25519", "algorithm")
    return algorithm


def _bounce_subdomain(value: str | None) -> str:
    if value is None:
        return DEFAULT_RETURN_PATH_LABEL
    label = value.strip().lower()
    if not _LABEL_RE.match(label):
        raise bad_request(
            f"bounce_subdomain {value!r} must be one DNS label: letters, digits and inner "
            "hyphens, at most 63 characters (e.g. bounces)",
            "bounce_subdomain",
        )
    return label


def _not_found() -> ApiError:
    return ApiError(404, "domain not found", "domain_id", None)


async def _domain(domain_id: str) -> Domain:
    domain = await app_ctx().store.domains.get(principal().tenant_id, domain_id)
    if domain is None:
        raise _not_found()
    return domain


# ---------------------------------------------------------------- records


def _spf_terms(config: Config) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    try:
        return spf_terms(config)
    except SpfNotConfigured as exc:
        raise ApiError(503, str(exc), None, exc.help) from None


def _records(domain: Domain, key: StoredDkimKey | None = None) -> tuple[DnsRecord, ...]:
    """The records to publish for ``domain`` with ``key`` (default: the current key)."""
    config = app_ctx().config
    _spf_terms(config)
    return records_for(config, domain, key)


def _pending_record(domain: Domain) -> DnsRecord | None:
    """The DKIM record of a staged rotation: to publish, not yet needed to send."""
    if domain.pending_dkim is None:
        return None
    record = next(r for r in _records(domain, domain.pending_dkim) if r.kind is RecordKind.DKIM)
    return dataclasses.replace(
        record,
        required=False,
        purpose=f"new DKIM key (rotation): {domain.name} signs with it once this record "
        "verifies; keep the current key's record published until then",
    )


def record_json(record: DnsRecord, *, pending: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": record.kind.value,
        "type": record.type,
        "host": record.host,
        "value": record.value,
        "purpose": record.purpose,
        "required": record.required,
        "pending": pending,
    }
    if record.type == "MX":
        out["priority"] = record.priority
    elif len(record.value) > 255:
        # One TXT record made of several strings: what DNS providers and zone files need.
        out["strings"] = list(record.txt_strings())
    out["zone_line"] = record.zone_line()
    return out


def all_records_json(domain: Domain) -> list[dict[str, Any]]:
    records = [record_json(r) for r in _records(domain)]
    pending = _pending_record(domain)
    if pending is not None:
        records.append(record_json(pending, pending=True))
    return records


def _key_json(domain: Domain, key: StoredDkimKey | None) -> dict[str, Any] | None:
    if key is None:
        return None
    return {
        "selector": key.selector,
        "algorithm": key.algorithm.value,
        "host": f"{key.selector}._domainkey.{domain.name}",
    }


def domain_json(domain: Domain) -> dict[str, Any]:
    return {
        "id": domain.id,
        "domain": domain.name,
        "is_active": domain.is_active,
        "verified": domain.verified,
        "can_send": domain.can_send,
        "verified_at": domain.verified_at,
        "last_checked_at": domain.last_checked_at,
        "bounce_subdomain": domain.bounce_subdomain,
        "return_path_domain": f"{domain.bounce_subdomain}.{domain.name}",
        "dkim": _key_json(domain, domain.dkim),
        "pending_dkim": _key_json(domain, domain.pending_dkim),
        "warmup": domain.warmup_started_at is not None,
        "warmup_started_at": domain.warmup_started_at,
        "forward_to": domain.forward_to,
        "created_at": domain.created_at,
        "updated_at": domain.updated_at,
    }


def check_json(check: RecordCheck, *, pending: bool = False) -> dict[str, Any]:
    return {
        "kind": check.record.kind.value,
        "type": check.record.type,
        "host": check.record.host,
        "expected": check.record.value,
        "required": check.record.required,
        "pending": pending,
        "status": check.status.value,
        "reason": check.reason,
        "seen": list(check.seen),
        "notes": list(check.notes),
    }


# ---------------------------------------------------------------- keys


async def _new_key(algorithm: DkimAlgorithm, *, avoid: str | None = None) -> StoredDkimKey:
    selector = new_selector()
    while selector == avoid:  # two rotations on one day drew the same 4 hex digits
        selector = new_selector()
    pair = await trio.to_thread.run_sync(lambda: generate_key_pair(algorithm, selector=selector))
    return StoredDkimKey(
        pair.selector,
        pair.algorithm,
        app_ctx().secrets.encrypt(pair.private_key_pem),
        pair.public_txt,
    )


# ---------------------------------------------------------------- routes


@blueprint.post("")
@tag(["Domains"])
@requires("domains.create")
@json_body(CreateDomain)
async def create_domain(data: CreateDomain) -> tuple[dict[str, Any], int]:
    ctx = app_ctx()
    tenant_id = principal().tenant_id
    name = normalize_domain_name(data.domain)
    algorithm = _algorithm(data.algorithm)
    bounce = _bounce_subdomain(data.bounce_subdomain)
    _spf_terms(ctx.config)  # refuse before generating anything when SPF is not configured
    existing = await ctx.store.domains.get_by_name(name)
    if existing is not None:
        raise _exists(name, existing if existing.tenant_id == tenant_id else None)
    key = await _new_key(algorithm)
    try:
        domain = await ctx.store.domains.create(
            tenant_id=tenant_id,
            name=name,
            ownership_token=_token(),
            dkim=key,
            bounce_subdomain=bounce,
        )
    except DomainExistsError:
        mine = await ctx.store.domains.get_by_name(name)
        raise _exists(name, mine if mine and mine.tenant_id == tenant_id else None) from None
    return {**domain_json(domain), "dns_records": all_records_json(domain)}, 201


def _token() -> str:
    return secrets.token_hex(16)


def _exists(name: str, mine: Domain | None) -> ApiError:
    if mine is not None:
        return ApiError(
            409,
            f"{name} is already one of your domains ({mine.id})",
            "domain",
            f"GET /api/admin/domains/{mine.id} shows it",
        )
    # Owned by another tenant: say only that, never whose it is or its id.
    return ApiError(
        409,
        f"{name} is already registered on this appliance; a domain can belong to one account only",
        "domain",
        "ask the appliance operator if you own this domain",
    )


@blueprint.get("")
@tag(["Domains"])
@requires("domains.read")
async def list_domains() -> dict[str, Any]:
    domains = await app_ctx().store.domains.for_tenant(principal().tenant_id)
    return {"result": [domain_json(d) for d in domains]}


@blueprint.get("/<domain_id>")
@tag(["Domains"])
@requires("domains.read")
async def get_domain(domain_id: str) -> dict[str, Any]:
    domain = await _domain(domain_id)
    return {**domain_json(domain), "last_check": domain.last_check}


@blueprint.get("/<domain_id>/dns-records")
@tag(["Domains"])
@requires("domains.read")
async def dns_records(domain_id: str) -> dict[str, Any]:
    domain = await _domain(domain_id)
    return {"id": domain.id, "domain": domain.name, "records": all_records_json(domain)}


@blueprint.post("/<domain_id>/verify")
@tag(["Domains"])
@requires("domains.update")
async def verify_domain(domain_id: str) -> dict[str, Any]:
    ctx = app_ctx()
    domain = await _domain(domain_id)
    records = _records(domain)
    pending = _pending_record(domain)
    wanted = [*records, *([pending] if pending else [])]
    init_dns_backend()
    try:
        resolver = Resolver(ctx.config.dns_nameservers or None)
    except DnsConfigError as exc:
        raise ApiError(
            503, f"DNS is not usable: {exc}", None, "check POSTYARD_DNS_NAMESERVERS"
        ) from None
    answers = await resolver.lookup_records(lookups_needed(wanted))
    result = check_records(domain.name, wanted, answers)
    main = list(result.checks[: len(records)])
    pending_check = result.checks[len(records)] if pending else None

    promote = pending_check is not None and pending_check.status is RecordStatus.FOUND
    if promote and pending_check is not None:
        # The new key signs from now on, so its record replaces the old one's in the verdict.
        main = [
            dataclasses.replace(
                pending_check,
                record=dataclasses.replace(
                    pending_check.record, required=True, purpose=c.record.purpose
                ),
            )
            if c.record.kind is RecordKind.DKIM
            else c
            for c in main
        ]
    problems = [c for c in main if c.blocking]
    lookup_failed_only = bool(problems) and all(c.status is RecordStatus.UNKNOWN for c in problems)
    verified = not problems or (lookup_failed_only and domain.verified)

    now = time.time()
    checks = [check_json(c) for c in main]
    if pending_check is not None and not promote:
        checks.append(check_json(pending_check, pending=True))
    summary = {"checked_at": now, "verified": verified, "records": checks}
    new_selector = domain.pending_dkim.selector if promote and domain.pending_dkim else None
    updated = await ctx.store.domains.record_check(
        principal().tenant_id,
        domain.id,
        verified=verified,
        result=summary,
        promote_selector=new_selector,
        checked_at=now,
    )
    if updated is None:  # deleted while we were looking
        raise _not_found()
    # Not promoted when another rotation was staged while we looked the records up.
    promoted = new_selector is not None and updated.dkim.selector == new_selector
    return {
        **domain_json(updated),
        "checked_at": now,
        "records": checks,
        "dkim_promoted": new_selector if promoted else None,
        "message": _verdict(updated, problems, lookup_failed_only, promoted),
    }


def _verdict(domain: Domain, problems: list[RecordCheck], temporary: bool, promoted: bool) -> str:
    rotated = f" The new DKIM key ({domain.dkim.selector}) now signs." if promoted else ""
    if not problems:
        if not domain.is_active:
            return (
                f"All required records are published, but {domain.name} is inactive: "
                'PATCH {"is_active": true} to send from it.' + rotated
            )
        return f"All required records are published; mail can be sent from {domain.name}." + (
            rotated
        )
    hosts = ", ".join(f"{c.record.type} {c.record.host}" for c in problems)
    if temporary:
        still = " The domain stays verified meanwhile." if domain.verified else ""
        return f"DNS lookups failed ({hosts}); try again in a few minutes.{still}"
    return (
        f"{len(problems)} required record{'s' if len(problems) > 1 else ''} to fix: {hosts}. "
        "Each record's reason says what to change."
    )


@blueprint.patch("/<domain_id>")
@tag(["Domains"])
@requires("domains.update")
@json_body(UpdateDomain)
async def update_domain(domain_id: str, data: UpdateDomain) -> dict[str, Any]:
    given = data.model_fields_set
    if not given:
        raise bad_request("nothing to change: give is_active, warmup or forward_to", "is_active")
    for field in ("is_active", "warmup"):
        if field in given and getattr(data, field) is None:
            raise bad_request(f"{field} must be true or false", field)
    domains, tenant_id = app_ctx().store.domains, principal().tenant_id
    current = await _domain(domain_id)
    forward_to = _forward_to(data.forward_to, current.name) if "forward_to" in given else None
    domain: Domain | None = current
    if data.is_active is not None:
        domain = await domains.set_active(tenant_id, domain_id, data.is_active)
    if data.warmup is False or (data.warmup and current.warmup_started_at is None):
        started = time.time() if data.warmup else None
        domain = await domains.set_warmup(tenant_id, domain_id, started)
    if "forward_to" in given:
        domain = await domains.set_forward_to(tenant_id, domain_id, forward_to)
    if domain is None:  # deleted meanwhile
        raise _not_found()
    return domain_json(domain)


def _forward_to(value: str | None, domain_name: str) -> str | None:
    if value is None:
        return None
    try:
        address = parse_address(value.strip())
    except InvalidAddressError as exc:
        raise bad_request(f"forward_to: {exc}", "forward_to") from None
    if address.domain == domain_name or address.domain.endswith(f".{domain_name}"):
        raise bad_request(
            f"forward_to {value!r} is inside {domain_name}: replies to {domain_name} come to "
            "this appliance, so forwarding them there would loop",
            "forward_to",
            "give a mailbox at another domain, such as your team's inbox",
        )
    return str(address)


@blueprint.post("/<domain_id>/rotate-dkim")
@tag(["Domains"])
@requires("domains.update")
async def rotate_dkim(domain_id: str) -> dict[str, Any]:
    ctx = app_ctx()
    domain = await _domain(domain_id)
    body = await json_object(required=False)
    raw = body.get("algorithm", domain.dkim.algorithm.key_type)
    if not isinstance(raw, str):
        raise bad_request("algorithm must be rsa or ed25519", "algorithm")
    key = await _new_key(_algorithm(raw), avoid=domain.dkim.selector)
    staged = await ctx.store.domains.stage_dkim(principal().tenant_id, domain.id, key)
    if staged is None:
        raise _not_found()
    record = _pending_record(staged)
    assert record is not None
    return {
        **domain_json(staged),
        "record": record_json(record, pending=True),
        "message": f"Publish this TXT record at {record.host}, then POST "
        f"/api/admin/domains/{staged.id}/verify. The current key ({staged.dkim.selector}) "
        "keeps signing until the new record verifies.",
    }


@blueprint.delete("/<domain_id>")
@tag(["Domains"])
@requires("domains.delete")
async def delete_domain(domain_id: str) -> tuple[str, int]:
    if not await app_ctx().store.domains.delete(principal().tenant_id, domain_id):
        raise _not_found()
    return "", 204
