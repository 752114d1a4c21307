"""The DNS records a sending domain must publish, from the appliance's configuration.

Shared by the domains API (what to publish, verify) and ``postyard doctor``;
the record rules themselves are pure (``domain.dns_records``).
"""

from __future__ import annotations

import ipaddress

from appliance.config import Config
from appliance.domain.dns_records import DnsRecord, SendingDomainSettings, records_to_publish
from appliance.store.domains import Domain, StoredDkimKey

CAPTURE_MODE_SPF_IP4 = ("127.0.0.1",)


class SpfNotConfigured(Exception):
    """Neither outbound_ips nor spf_include is set: no SPF record can be written."""

    help = (
        "the operator sets outbound_ips (POSTYARD_OUTBOUND_IPS) or spf_include "
        "(POSTYARD_SPF_INCLUDE); `postyard config` describes them"
    )

    def __init__(self) -> None:
        super().__init__(
            "sending domains are not configured on this appliance: the SPF record to publish "
            "needs the addresses mail leaves from"
        )


def spf_terms(config: Config) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(include:, ip4:, ip6:) terms of sending domains' SPF records; SpfNotConfigured if none."""
    includes = (config.spf_include,) if config.spf_include else ()
    nets = [ipaddress.ip_network(ip, strict=False) for ip in config.outbound_ips]
    # A single address is written bare (ip4:192.0.2.1), a range with its prefix.
    terms = [(n.version, str(n.network_address) if n.num_addresses == 1 else str(n)) for n in nets]
    ip4 = tuple(t for version, t in terms if version == 4)
    ip6 = tuple(t for version, t in terms if version == 6)
    if not (includes or ip4 or ip6):
        if config.capture_mode:
            # Staging: mail never leaves this machine, so a newcomer can add a domain before
            # knowing the production addresses; the SPF record names this machine only.
            return (), CAPTURE_MODE_SPF_IP4, ()
        raise SpfNotConfigured()
    return includes, ip4, ip6


def records_for(
    config: Config, domain: Domain, key: StoredDkimKey | None = None
) -> tuple[DnsRecord, ...]:
    """The records to publish for ``domain`` with ``key`` (default: its current key)."""
    includes, ip4, ip6 = spf_terms(config)
    key = key or domain.dkim
    return records_to_publish(
        SendingDomainSettings(
            domain=domain.name,
            dkim_selector=key.selector,
            dkim_public_txt=key.public_txt,
            ownership_token=domain.ownership_token,
            bounce_mx_host=config.effective_hostname,
            spf_includes=includes,
            spf_ip4=ip4,
            spf_ip6=ip6,
            return_path_label=domain.bounce_subdomain,
        )
    )
