"""Our DNS resolver: dnspython's async resolver under trio, with typed outcomes.

Call :func:`init_dns_backend` once at start-up (dnspython picks its async
backend once per process). A :class:`Resolver` is built from configuration:
``nameservers`` as ``host:port`` strings (``POSTYARD_DNS_NAMESERVERS``; tests
point it at ``tests/support/dns_server.py``) or None for ``/etc/resolv.conf``.

Every lookup returns a :class:`DnsResult` whose :class:`DnsStatus` tells a
permanent answer (NXDOMAIN, NODATA, null MX) from a temporary failure
(timeout, SERVFAIL, refused), which is what delivery and domain verification
decide on. Answers are not cached here: verification must see DNS as it is
now, and delivery can put a cache in front if it needs one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename
import trio

from appliance.domain.dns_records import LookupKey, LookupResult, LookupStatus

T = TypeVar("T")

DEFAULT_TIMEOUT = 2.0  # seconds per query to one nameserver
DEFAULT_LIFETIME = 6.0  # seconds for a whole lookup, retries and servers included


def init_dns_backend() -> None:
    """Make dnspython's async code run on trio. Idempotent; call at start-up."""
    dns.asyncbackend.set_default_backend("trio")


class DnsConfigError(ValueError):
    """The DNS configuration is unusable (the operator must fix it)."""


class DnsStatus(Enum):
    FOUND = "found"
    NXDOMAIN = "nxdomain"  # the name does not exist: permanent
    NODATA = "nodata"  # the name exists, without records of this type: permanent
    NULL_MX = "null_mx"  # RFC 7505 "MX 0 .": the domain accepts no mail: permanent
    TEMPFAIL = "tempfail"  # timeout, SERVFAIL, REFUSED, network error: try again later

    @property
    def is_permanent(self) -> bool:
        return self is not DnsStatus.TEMPFAIL


@dataclass(frozen=True, slots=True)
class DnsResult(Generic[T]):
    status: DnsStatus
    values: tuple[T, ...] = ()
    reason: str = ""  # for anything but FOUND: what happened, in words

    @property
    def found(self) -> bool:
        return self.status is DnsStatus.FOUND


MxRecord = tuple[int, str]  # (preference, exchange host without trailing dot)


def parse_nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``::1``, ``[::1]:5353`` → a UDP/TCP nameserver."""
    host, port = spec.strip(), 53
    if host.startswith("["):
        inner, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise DnsConfigError(f"bad DNS nameserver {spec!r}: expected [ipv6]:port")
        host = inner
        if rest:
            port = _port(spec, rest[1:])
    elif host.count(":") == 1:
        host, _, p = host.partition(":")
        port = _port(spec, p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise DnsConfigError(
            f"bad DNS nameserver {spec!r}: give an IP address (host:port), not a name"
        ) from None
    return dns.nameserver.Do53Nameserver(host, port)


def _port(spec: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DnsConfigError(f"bad DNS nameserver {spec!r}: port must be 1-65535")
    return int(text)


class Resolver:
    """Async lookups for delivery (MX, A/AAAA), verification (TXT, MX) and doctor (PTR)."""

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        if nameservers is None:
            try:
                self._resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration as exc:
                raise DnsConfigError(
                    f"no usable /etc/resolv.conf ({exc}); set POSTYARD_DNS_NAMESERVERS"
                ) from exc
        else:
            if not nameservers:
                raise DnsConfigError("the DNS nameserver list is empty")
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [parse_nameserver(s) for s in nameservers]
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        # Queries are for absolute names: never append a search domain.
        self._resolver.search = []
        self._resolver.use_search_by_default = False

    @property
    def nameservers(self) -> tuple[str, ...]:
        return tuple(
            f"{ns.address}:{ns.port}"
            if isinstance(ns, dns.nameserver.AddressAndPortNameserver)
            else str(ns)
            for ns in self._resolver.nameservers
        )

    async def _query(self, name: str, rdtype: str) -> DnsResult[dns.resolver.Answer]:
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.SyntaxError, dns.name.LabelTooLong, dns.name.NameTooLong) as e:
            return DnsResult(DnsStatus.NXDOMAIN, reason=f"{name!r} is not a valid domain name: {e}")
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return DnsResult(DnsStatus.NXDOMAIN, reason=f"{name} does not exist (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            return DnsResult(DnsStatus.NODATA, reason=f"{name} has no {rdtype} records")
        except dns.resolver.LifetimeTimeout:
            return DnsResult(
                DnsStatus.TEMPFAIL,
                reason=f"DNS timeout looking up {rdtype} {name} after "
                f"{self._resolver.lifetime:g}s (nameservers: {', '.join(self.nameservers)})",
            )
        except dns.resolver.NoNameservers as exc:
            return DnsResult(
                DnsStatus.TEMPFAIL, reason=f"no nameserver answered {rdtype} {name}: {exc}"
            )
        except dns.exception.DNSException as exc:
            return DnsResult(DnsStatus.TEMPFAIL, reason=f"DNS error for {rdtype} {name}: {exc}")
        return DnsResult(DnsStatus.FOUND, (answer,))

    async def mx(self, domain: str) -> DnsResult[MxRecord]:
        """MX records sorted by preference (ties: by host; callers may shuffle those).

        A lone ``0 .`` is a null MX (status NULL_MX). A ``.`` mixed with real
        exchanges violates RFC 7505; the real ones are returned.
        """
        result = await self._query(domain, "MX")
        if not result.found:
            return DnsResult(result.status, reason=result.reason)
        records = sorted(
            (int(r.preference), _host(r.exchange))
            for r in result.values[0]
            if r.rdtype == dns.rdatatype.MX
        )
        real = [(p, h) for p, h in records if h]
        if not real:
            return DnsResult(
                DnsStatus.NULL_MX, reason=f"{domain} publishes a null MX: it accepts no mail"
            )
        return DnsResult(DnsStatus.FOUND, tuple(real))

    async def a_aaaa(self, host: str) -> DnsResult[str]:
        """IPv4 and IPv6 addresses of ``host`` (A first), looked up concurrently."""
        results: dict[str, DnsResult[dns.resolver.Answer]] = {}

        async def one(rdtype: str) -> None:
            results[rdtype] = await self._query(host, rdtype)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A")
            nursery.start_soon(one, "AAAA")
        addresses = tuple(
            r.address
            for rdtype in ("A", "AAAA")
            if results[rdtype].found
            for r in results[rdtype].values[0]
            if r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        )
        if addresses:
            return DnsResult(DnsStatus.FOUND, addresses)
        statuses = {r.status for r in results.values()}
        for status in (DnsStatus.NXDOMAIN, DnsStatus.TEMPFAIL):
            if status in statuses:
                reason = next(r.reason for r in results.values() if r.status is status)
                return DnsResult(status, reason=reason)
        return DnsResult(DnsStatus.NODATA, reason=f"{host} has no A or AAAA records")

    async def txt(self, name: str) -> DnsResult[str]:
        """TXT records, one string per record: the strings of ONE record are
        concatenated without separators (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
        Bytes that are not UTF-8 come out as U+FFFD."""
        result = await self._query(name, "TXT")
        if not result.found:
            return DnsResult(result.status, reason=result.reason)
        values = tuple(
            b"".join(r.strings).decode("utf-8", "replace")
            for r in result.values[0]
            if r.rdtype == dns.rdatatype.TXT
        )
        return DnsResult(DnsStatus.FOUND, values)

    async def ptr(self, ip: str) -> DnsResult[str]:
        """Reverse DNS names of an IPv4 or IPv6 address (ValueError if not an address)."""
        try:
            name = dns.reversename.from_address(ip).to_text()
        except dns.exception.SyntaxError:
            raise ValueError(f"{ip!r} is not an IP address") from None
        result = await self._query(name, "PTR")
        if not result.found:
            return DnsResult(result.status, reason=result.reason)
        return DnsResult(
            DnsStatus.FOUND,
            tuple(_host(r.target) for r in result.values[0] if r.rdtype == dns.rdatatype.PTR),
        )

    async def lookup_records(self, keys: Iterable[LookupKey]) -> dict[LookupKey, LookupResult]:
        """Answer the lookups ``appliance.domain.dns_records`` needs, concurrently."""
        out: dict[LookupKey, LookupResult] = {}

        async def one(key: LookupKey) -> None:
            host, rdtype = key
            if rdtype == "MX":
                mx = await self.mx(host)
                values = tuple(f"{p} {h}" for p, h in mx.values)
                if mx.status is DnsStatus.NULL_MX:
                    out[key] = LookupResult(LookupStatus.FOUND, ("0 .",))
                    return
                out[key] = LookupResult(_lookup_status(mx.status), values, mx.reason)
            elif rdtype == "TXT":
                txt = await self.txt(host)
                out[key] = LookupResult(_lookup_status(txt.status), txt.values, txt.reason)
            else:
                raise ValueError(f"unsupported record type for verification: {rdtype}")

        async with trio.open_nursery() as nursery:
            for key in dict.fromkeys(keys):
                nursery.start_soon(one, key)
        return out


def _lookup_status(status: DnsStatus) -> LookupStatus:
    return {
        DnsStatus.FOUND: LookupStatus.FOUND,
        DnsStatus.NXDOMAIN: LookupStatus.NXDOMAIN,
        DnsStatus.NODATA: LookupStatus.NODATA,
        DnsStatus.NULL_MX: LookupStatus.FOUND,
        DnsStatus.TEMPFAIL: LookupStatus.FAILED,
    }[status]


def _host(name: dns.name.Name) -> str:
    """Presentation form without the trailing dot; the root becomes ''."""
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else ""


def dkimpy_dnsfunc(txt_by_name: Mapping[str, Sequence[str]]) -> Callable[..., bytes | None]:
    """A blocking ``dnsfunc`` for ``dkim.verify`` that answers from prefetched TXT records.

    dkimpy's own lookup blocks the event loop; look the key records up with
    :meth:`Resolver.txt` first (``<s>._domainkey.<d>`` from the signature)
    and hand the answers over. Returns the first record that looks like a
    DKIM key, like dkimpy's default (which takes the first TXT record).
    """
    table = {name.rstrip(".").lower(): list(values) for name, values in txt_by_name.items()}

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        key = (name.decode("ascii") if isinstance(name, bytes) else name).rstrip(".").lower()
        values = table.get(key, [])
        keys = [v for v in values if "p=" in v] or values
        return keys[0].encode("utf-8") if keys else None

    return dnsfunc
