"""What a mail, calendar or contacts client needs to know, derived from the configuration alone.

Every answer of the auto-setup endpoints (Thunderbird autoconfig, Microsoft Autodiscover, the
Apple profile) and every record ``tau check`` asks operators to publish comes from here, so they
cannot disagree with each other or with the listeners that actually run:

- a server is listed only when its ``[listen]`` key is set; implicit TLS (``imaps``,
  ``submissions``) first, then the STARTTLS ports (``imap``, ``submission``, ``managesieve``);
- its host is the listener's interface when that is a loopback address (nobody else can reach
  it), else ``[tau] hostname``;
- the DAV and web links come from ``[tau] public_url`` (``https://HOSTNAME`` when unset).

Nothing here depends on the address asked about beyond its domain: an unknown user of a served
domain gets exactly the answer a real one gets.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tau.net.endpoints import endpoint_address

if TYPE_CHECKING:
    from tau.config import Config

#: listener -> (client protocol, TLS mode); the order is the order clients are offered them
CLIENT_LISTENERS = (
    ("imaps", "imap", "SSL"),
    ("imap", "imap", "STARTTLS"),
    ("submissions", "smtp", "SSL"),
    ("submission", "smtp", "STARTTLS"),
    ("managesieve", "managesieve", "STARTTLS"),
)
MTA_STS_MAX_AGE = 604800


@dataclass(frozen=True)
class Server:
    listener: str   # imaps, imap, submissions, submission, managesieve
    protocol: str   # imap | smtp | managesieve
    host: str
    port: int
    tls: str        # "SSL" (implicit TLS) | "STARTTLS"


@dataclass(frozen=True)
class ClientSettings:
    hostname: str
    public_url: str
    servers: tuple[Server, ...]

    def of(self, protocol: str) -> list[Server]:
        return [s for s in self.servers if s.protocol == protocol]

    @property
    def web(self) -> tuple[str, int, bool]:
        """``(host, port, https)`` of ``public_url``, where CalDAV and CardDAV are served."""
        parts = urlsplit(self.public_url)
        https = parts.scheme == "https"
        return parts.hostname or self.hostname, parts.port or (443 if https else 80), https

    @property
    def dav_url(self) -> str:
        return self.public_url + "/dav/"

    def principal_url(self, address: str) -> str:
        return f"{self.public_url}/dav/principals/{address}/"


def listener_value(config: Config, name: str) -> str:
    """``[listen] NAME``, or "" for a listener this tau does not know (``managesieve`` before its
    service exists)."""
    value = getattr(config.listen, name, "")
    return value.strip() if isinstance(value, str) else ""


def public_url(config: Config) -> str:
    """``[tau] public_url`` without a trailing slash; ``https://HOSTNAME`` when unset (as the registry)."""
    return (config.tau.public_url or f"https://{config.tau.hostname}").rstrip("/")


def _reachable_host(interface: str, hostname: str) -> str:
    try:
        if ipaddress.ip_address(interface.strip("[]")).is_loopback:
            return interface.strip("[]")
    except ValueError:
        pass
    return hostname


def client_settings(config: Config) -> ClientSettings:
    servers = []
    for listener, protocol, tls in CLIENT_LISTENERS:
        desc = listener_value(config, listener)
        if not desc:
            continue
        kind, port, interface = endpoint_address(desc)
        if port is None:
            continue
        mode = "SSL" if kind == "ssl" else tls
        servers.append(Server(listener, protocol, _reachable_host(interface, config.tau.hostname), port, mode))
    return ClientSettings(config.tau.hostname, public_url(config), tuple(servers))


def mta_sts_policy(config: Config) -> str:
    """The policy (RFC 8461 §3.2) served at ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``."""
    return f"version: STSv1\r\nmode: enforce\r\nmx: {config.tau.hostname}\r\nmax_age: {MTA_STS_MAX_AGE}\r\n"


def mta_sts_id(config: Config) -> str:
    """The ``id`` of the ``_mta-sts`` TXT record: changes whenever the policy does (§3.1)."""
    return hashlib.sha256(mta_sts_policy(config).encode()).hexdigest()[:16]


def served_domain(host: str, prefix: str = "") -> str:
    """The domain a ``Host`` header names: without port, trailing dot and ``prefix``
    (``autoconfig.``, ``mta-sts.``); "" when it is not a plausible name."""
    name = host.strip().lower()
    if name.startswith("["):
        return ""
    name = name.rpartition(":")[0] if ":" in name else name
    name = name.rstrip(".")
    if prefix and name.startswith(prefix):
        name = name[len(prefix):]
    if not name or len(name) > 253 or not all(c.isalnum() or c in "-." for c in name):
        return ""
    return name
