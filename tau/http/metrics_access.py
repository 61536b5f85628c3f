"""Who may read ``/metrics``: clients in ``[metrics] allow`` (CIDR list; default loopback and the
private ranges, where a Prometheus server usually sits). Anyone else gets 403 JSON: the series
name users, routes and volumes an outsider has no business seeing."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MetricsAccess:
    def __init__(self, allow: Iterable[str]) -> None:
        self.networks: list[Network] = [ipaddress.ip_network(n, strict=False) for n in allow]

    def allows(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        candidates = [address] + ([mapped] if mapped is not None else [])
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)
