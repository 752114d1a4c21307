"""Where mail for a domain goes: MX hosts by preference, their addresses, cached by TTL.

RFC 5321 §5.1: MX records in preference order (equal preferences shuffled so
load spreads), the domain's own A/AAAA when it has no MX (the implicit MX),
a null MX (RFC 7505) or a domain that does not exist is a permanent failure,
and a DNS failure is temporary. Answers are cached for ``ttl`` seconds
(failures for less) so a burst to one domain costs one lookup.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

import trio

from appliance.net.dns import DnsStatus, Resolver


@dataclass(frozen=True, slots=True)
class MxTarget:
    host: str  # the MX name: EHLO peer, TLS server name, what events show
    address: str  # the IP address to connect to
    preference: int


@dataclass(frozen=True, slots=True)
class MxRoute:
    """The MX targets of a domain, or why there are none."""

    domain: str
    targets: tuple[MxTarget, ...] = ()
    permanent: bool = False  # no targets and never will be: bounce
    status: str = ""  # enhanced status for a failure (5.1.10 null MX, 5.1.2 no such domain)
    reason: str = ""  # in words, for the message page

    @property
    def ok(self) -> bool:
        return bool(self.targets)


_FAILURE_TTL = 30.0  # seconds a temporary DNS failure is remembered


class MxRouter:
    def __init__(
        self,
        resolver: Resolver,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = trio.current_time,
        rng: random.Random | None = None,
    ) -> None:
        self._resolver = resolver
        self._ttl = ttl
        self._clock = clock
        self._rng = rng or random.Random()
        self._cache: dict[str, tuple[float, MxRoute]] = {}

    async def route(self, domain: str) -> MxRoute:
        domain = domain.lower().rstrip(".")
        now = self._clock()
        cached = self._cache.get(domain)
        if cached is not None and cached[0] > now:
            return self._shuffled(cached[1])
        route = await self._lookup(domain)
        ttl = self._ttl if route.ok or route.permanent else _FAILURE_TTL
        self._cache[domain] = (now + ttl, route)
        if len(self._cache) > 10_000:
            self._evict(now)
        return self._shuffled(route)

    def _evict(self, now: float) -> None:
        for key in [k for k, (until, _) in self._cache.items() if until <= now]:
            del self._cache[key]

    def _shuffled(self, route: MxRoute) -> MxRoute:
        """Equal preferences in random order (RFC 5321 §5.1), groups kept in order."""
        if len(route.targets) < 2:
            return route
        targets: list[MxTarget] = []
        for _, group in groupby(route.targets, key=lambda t: t.preference):
            same = list(group)
            self._rng.shuffle(same)
            targets.extend(same)
        return MxRoute(route.domain, tuple(targets))

    async def _lookup(self, domain: str) -> MxRoute:
        mx = await self._resolver.mx(domain)
        if mx.status is DnsStatus.NULL_MX:
            return MxRoute(domain, permanent=True, status="5.1.10", reason=mx.reason)
        if mx.status is DnsStatus.NXDOMAIN:
            return MxRoute(domain, permanent=True, status="5.1.2", reason=mx.reason)
        if mx.status is DnsStatus.TEMPFAIL:
            return MxRoute(domain, status="4.4.3", reason=mx.reason)
        hosts = list(mx.values) if mx.found else [(0, domain)]  # NODATA: implicit MX
        targets: list[MxTarget] = []
        failures: list[str] = []
        temporary = False
        for preference, host in hosts:
            addresses = await self._resolver.a_aaaa(host)
            if addresses.found:
                targets.extend(MxTarget(host, a, preference) for a in addresses.values)
            else:
                failures.append(addresses.reason)
                temporary |= addresses.status is DnsStatus.TEMPFAIL
        if targets:
            return MxRoute(domain, tuple(targets))
        if not mx.found and not temporary:
            return MxRoute(
                domain,
                permanent=True,
                status="5.1.2",
                reason=f"{domain} has no MX records and no A/AAAA address to deliver to",
            )
        return MxRoute(
            domain,
            permanent=not temporary,
            status="4.4.3" if temporary else "5.4.4",
            reason=f"no usable address for the MX hosts of {domain}: " + "; ".join(failures),
        )
