"""Which addresses a webhook may not be sent to: link-local and cloud metadata services.

A webhook URL is chosen by a tenant, and the appliance POSTs to it from inside
the operator's network. Link-local addresses (169.254.0.0/16, fe80::/10) and
the cloud metadata endpoints (169.254.169.254 on AWS, GCP and Azure,
fd00:ec2::254 on AWS over IPv6, 100.100.100.200 on Alibaba Cloud) hand out
instance credentials to whoever asks, so they are refused unless the operator
sets ``webhook_allow_link_local``. Loopback and private addresses stay allowed:
this is an on-prem appliance and receivers often live next to it.
"""

from __future__ import annotations

import ipaddress

BLOCKED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("169.254.169.254/32"), "the cloud metadata service"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "the cloud metadata service (AWS, IPv6)"),
    (ipaddress.ip_network("100.100.100.200/32"), "the cloud metadata service (Alibaba Cloud)"),
    (ipaddress.ip_network("169.254.0.0/16"), "a link-local address"),
    (ipaddress.ip_network("fe80::/10"), "a link-local address"),
)

ALLOW_HELP = (
    "point the webhook at a receiver on a routable address; an operator who really "
    "means it sets webhook_allow_link_local = true"
)


def blocked_address(address: str) -> str | None:
    """Why ``address`` (an IP literal) may not receive webhooks, or None when it may.

    An IPv4-mapped IPv6 address (``::ffff:169.254.169.254``) is judged as the
    IPv4 address it carries; a scope id (``fe80::1%eth0``) is ignored.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network, what in BLOCKED_NETWORKS:
        if ip.version == network.version and ip in network:
            return f"{ip} is {what}"
    return None


def blocked_host(host: str) -> str | None:
    """Like ``blocked_address`` for a URL's host: None for a host name (judged once resolved)."""
    return blocked_address(host.strip("[]"))
