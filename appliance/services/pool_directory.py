"""IP pools and relays as the delivery engine sees them, cached for a few seconds.

A send request's ``ip_pool_name`` picks a pool: its addresses are the
source addresses of new connections (in turn), and a pool with a relay
sends everything through that smart host instead of recipients' MX hosts.
Without a pool (or with a name no pool has) mail leaves from the default
addresses, by MX. Operators' changes apply within ``CACHE_SECONDS``.

In capture mode (``capture_mode``) every message goes to the one
``capture`` destination, the built-in mailbox (``services.capture_target``),
whatever its pool says: nothing leaves the box.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appliance.context import AppContext
from appliance.domain.acceptance import recipient_domain
from appliance.domain.secret_box import SecretBoxError
from appliance.services.delivery_targets import DestinationUnreachable
from appliance.services.destination import DestinationKey
from appliance.services.relay_test import RelayEndpoint, endpoint_for
from appliance.store.ip_pools import IpPool

log = logging.getLogger("appliance.delivery")

CACHE_SECONDS = 10.0


class PoolDirectory:
    def __init__(self, ctx: AppContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ctx = ctx
        self._clock = clock
        self._pools: dict[str, IpPool] = {}
        self._loaded_at: float | None = None
        self._unknown_logged: set[str] = set()

    async def pool(self, name: str | None) -> IpPool | None:
        if name is None:
            return None
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at > CACHE_SECONDS:
            self._pools = {p.name: p for p in await self._ctx.store.ip_pools.list()}
            self._loaded_at = now
        found = self._pools.get(name)
        if found is None and name not in self._unknown_logged:
            self._unknown_logged.add(name)
            log.warning(
                "send request names an IP pool that does not exist; using the default addresses",
                extra={"ip_pool": name},
            )
        return found

    async def destination_for(self, recipient: str, pool_name: str | None) -> DestinationKey:
        pool = await self.pool(pool_name)
        if self._ctx.config.capture_mode:
            return DestinationKey("capture", "mailbox", pool.name if pool else None)
        if pool is not None and pool.relay_id is not None:
            return DestinationKey("relay", pool.relay_id, pool.name)
        return DestinationKey("mx", recipient_domain(recipient), pool.name if pool else None)

    def sources(self, pool_name: str | None) -> tuple[str | None, ...]:
        """Source addresses of a pool loaded by ``destination_for``; (None,) = the OS's choice."""
        pool = self._pools.get(pool_name) if pool_name else None
        if pool is None or not pool.addresses:
            return (None,)
        return tuple(pool.addresses)

    async def relay(self, relay_id: str) -> RelayEndpoint:
        relay = await self._ctx.store.relays.get(relay_id)
        if relay is None:
            raise DestinationUnreachable(
                f"relay {relay_id} was deleted; its pool now has no relay (edit the pool)",
                permanent=False,
                status="4.3.5",
            )
        try:
            return endpoint_for(relay, self._ctx.secrets)
        except SecretBoxError as exc:
            raise DestinationUnreachable(
                f"relay {relay.name}: {exc}; set its password again under /api/admin/relays",
                permanent=False,
                status="4.3.5",
            ) from exc
