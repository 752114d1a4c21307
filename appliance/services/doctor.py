"""``postyard doctor``: gather the facts (store, binds, DNS, certificate, webhooks, OIDC).

Verdicts and wording live in ``appliance.domain.doctor_checks``; the DNS records
of sending domains are checked by the same code as ``POST …/domains/{id}/verify``.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.config import Config, Listen
from appliance.domain.dns_records import check_records, lookups_needed
from appliance.domain.doctor_checks import (
    Check,
    Verdict,
    bind_verdict,
    certificate_verdict,
    domain_verdicts,
    fcrdns_verdict,
    oidc_jwks_verdict,
    oidc_verdict,
    schema_verdict,
)
from appliance.domain.oidc import OidcError, discovery_url, key_ids
from appliance.net.dns import DnsConfigError, DnsStatus, Resolver, init_dns_backend
from appliance.net.oidc import OidcClient
from appliance.services.domain_records import SpfNotConfigured, records_for
from appliance.store import migrate
from appliance.store.store import Store

CONNECT_TIMEOUT = 3.0


async def run_checks(config: Config) -> list[Check]:
    """Every check, in report order. Never raises for a problem it can describe."""
    checks = [_data_dir(config)]
    store, db_checks = await _open_store(config)
    checks += db_checks
    for key, listen in (
        ("http_listen", config.http),
        ("inbound_listen", config.inbound),
        ("submission_listen", config.submission),
    ):
        checks.append(await _bind(key, listen))
    resolver: Resolver | None = None
    init_dns_backend()
    try:
        resolver = Resolver(config.dns_nameservers or None, timeout=2.0, lifetime=4.0)
    except DnsConfigError as exc:
        checks.append(Check("dns resolver", Verdict.FAIL, str(exc), "set dns_nameservers"))
    try:
        if resolver is not None:
            if store is not None:
                checks += await _domains(config, store, resolver)
            checks += await _reverse_dns(config, resolver)
        checks.append(await trio.to_thread.run_sync(_certificate, config))
        if store is not None:
            checks += await _webhooks(store)
        checks += await _oidc(config)
    finally:
        if store is not None:
            store.close()
    return checks


def _data_dir(config: Config) -> Check:
    name = "data directory"
    path = config.data_dir
    if not path.is_dir():
        return Check(name, Verdict.FAIL, f"{path} does not exist", "run `postyard init`")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Check(
            name,
            Verdict.FAIL,
            f"{path} is not writable ({exc.strerror})",
            f"chown it to the user Postyard runs as (uid {os.getuid()} ran this check)",
        )
    return Check(name, Verdict.OK, f"{path.resolve()} is writable")


async def _open_store(config: Config) -> tuple[Store | None, list[Check]]:
    url = config.effective_database_url
    shown = url.split("@")[-1] if "@" in url else url
    if not config.database_url and not config.sqlite_path.exists():
        fix = "run `postyard init` (or `postyard serve`) with this data_dir"
        return None, [Check("database", Verdict.FAIL, f"no store at {shown}", fix)]
    try:
        store = await Store.open(url, pool_size=1, migrate_schema=False)
        current = await trio.to_thread.run_sync(migrate.current_revision, store.db)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, [
            Check(
                "database",
                Verdict.FAIL,
                f"cannot open {shown}: {first}",
                "check database_url (POSTYARD_DATABASE_URL) and that the server is running",
            )
        ]
    ok = Check("database", Verdict.OK, f"{store.dialect} store at {shown} opens")
    return store, [ok, schema_verdict(current, migrate.head_revision())]


async def _bind(key: str, listen: Listen) -> Check:
    family = trio.socket.AF_INET6 if ":" in listen.host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        await sock.bind((listen.host, listen.port))
        sock.listen(1)
    except OSError as exc:
        return bind_verdict(key, str(listen), exc.errno, exc.strerror or str(exc))
    finally:
        sock.close()
    return bind_verdict(key, str(listen), None)


async def _domains(config: Config, store: Store, resolver: Resolver) -> list[Check]:
    out: list[Check] = []
    for tenant in await store.tenants.all():
        for domain in await store.domains.for_tenant(tenant.id):
            if not domain.is_active:
                continue
            try:
                wanted = records_for(config, domain)
            except SpfNotConfigured as exc:
                fix = "set outbound_ips or spf_include"
                return [Check("sending domains", Verdict.FAIL, str(exc), fix)]
            answers = await resolver.lookup_records(lookups_needed(wanted))
            out += domain_verdicts(check_records(domain.name, wanted, answers))
    if not out:
        out.append(Check("sending domains", Verdict.OK, "none registered yet"))
    return out


async def _reverse_dns(config: Config, resolver: Resolver) -> list[Check]:
    if not config.outbound_ips:
        return [
            Check(
                "reverse dns",
                Verdict.WARN,
                "outbound_ips is not set, so the PTR of the sending addresses is not checked",
                "set outbound_ips to the public addresses mail leaves from",
            )
        ]
    out = []
    for entry in config.outbound_ips:
        net = ipaddress.ip_network(entry, strict=False)
        if net.num_addresses > 1:
            out.append(
                Check(
                    f"reverse dns {entry}",
                    Verdict.WARN,
                    "a range: each address mail leaves from needs its own PTR",
                    "list the addresses singly in outbound_ips to have them checked",
                )
            )
            continue
        ip = str(net.network_address)
        ptr = await resolver.ptr(ip)
        if ptr.status is DnsStatus.TEMPFAIL:
            out.append(
                Check(f"reverse dns {ip}", Verdict.WARN, ptr.reason, "check dns_nameservers")
            )
            continue
        if not ptr.found:
            out.append(fcrdns_verdict(ip, None, {}, ptr.reason))
            continue
        forward = {}
        for name in ptr.values:
            forward[name] = (await resolver.a_aaaa(name)).values
        out.append(fcrdns_verdict(ip, ptr.values, forward))
    return out


def _certificate(config: Config) -> Check:
    path = config.tls_cert_file
    if not path:
        return certificate_verdict("")
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        return certificate_verdict(path, problem=f"cannot read it ({exc.strerror})")
    except ValueError as exc:
        return certificate_verdict(path, problem=f"not a PEM certificate ({exc})")
    leaf = certs[0]
    key_matches: bool | None = None
    if config.tls_key_file:
        try:
            key = serialization.load_pem_private_key(
                Path(config.tls_key_file).read_bytes(), password=None
            )
        except (OSError, ValueError, TypeError) as exc:
            return certificate_verdict(path, problem=f"tls_key_file is unusable ({exc})")
        raw = serialization.PublicFormat.SubjectPublicKeyInfo
        pem = serialization.Encoding.PEM
        key_matches = key.public_key().public_bytes(pem, raw) == leaf.public_key().public_bytes(
            pem, raw
        )
    else:
        return certificate_verdict(path, problem="tls_key_file is not set")
    return certificate_verdict(
        path,
        not_after=leaf.not_valid_after_utc.timestamp(),
        now=time.time(),
        key_matches=key_matches,
    )


async def _webhooks(store: Store) -> list[Check]:
    out = []
    for hook in await store.webhooks.list():
        name = f"webhook {hook.id}"
        parts = urlsplit(hook.url)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            out.append(Check(name, Verdict.FAIL, f"{hook.url} has a bad port", "fix the URL"))
            continue
        if not hook.enabled:
            out.append(
                Check(
                    name,
                    Verdict.WARN,
                    f"{hook.url} is disabled ({hook.disabled_reason or 'by the user'})",
                    f'PATCH /v3/user/webhooks/{hook.id} {{"enabled": true}} once it works',
                )
            )
            continue
        problem = ""
        with trio.move_on_after(CONNECT_TIMEOUT) as scope:
            try:
                stream = await trio.open_tcp_stream(host, port)
                await stream.aclose()
            except OSError as exc:
                problem = exc.strerror or str(exc)
        if scope.cancelled_caught:
            problem = f"no answer within {CONNECT_TIMEOUT:g} s"
        if problem:
            out.append(
                Check(
                    name,
                    Verdict.FAIL,
                    f"cannot connect to {host}:{port} ({problem})",
                    f"check the receiver is up; GET /v3/user/webhooks/{hook.id}/deliveries "
                    "shows recent attempts",
                )
            )
        else:
            out.append(Check(name, Verdict.OK, f"{host}:{port} accepts connections"))
    return out


async def _oidc(config: Config) -> list[Check]:
    """The OpenID Connect provider, as the admin UI's login needs it: its discovery
    document and JWKS reachable from this host, and the redirect URI registered."""
    if not config.oidc_issuer:
        return []
    async with OidcClient.from_config(config, timeout=2 * CONNECT_TIMEOUT) as client:
        try:
            meta = await client.metadata()
        except OidcError as exc:
            return [oidc_verdict("discovery", exc)]
        found = f"{discovery_url(config.oidc_issuer)} names issuer {meta.issuer}"
        out = [oidc_verdict("discovery", None, found)]
        try:
            out.append(oidc_jwks_verdict(meta.jwks_uri, key_ids(await client.jwks())))
        except OidcError as exc:
            out.append(oidc_verdict("jwks", exc))
        redirect_uri = config.oidc_redirect_uri
        try:
            await client.check_redirect_uri(redirect_uri, config.oidc_scopes)
        except OidcError as exc:
            out.append(oidc_verdict("redirect_uri", exc))
        else:
            accepted = f"the provider accepts a login with redirect URI {redirect_uri}"
            out.append(oidc_verdict("redirect_uri", None, accepted))
    return out
