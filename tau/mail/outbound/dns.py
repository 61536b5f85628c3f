"""DNS look-ups for mail with ``twisted.names``: MX (RFC 5321 §5.1), A/AAAA, TXT.

One ``MailDNS`` per process, pointed at ``[outbound] resolver`` (``host:port``) when set, else
at the system's resolvers (``/etc/resolv.conf``). The SPF, DMARC, DKIM and MTA-STS code asks
through the same object, so tests point the whole mail stack at one small authoritative server.

Answers distinguish "no such name" (NXDOMAIN: a permanent fact) from "could not find out"
(SERVFAIL, timeouts: :class:`DNSTempError`, to be retried) because RFC 5321 §5.1, RFC 7208 §5
and RFC 7489 §6.6.3 treat them differently. Answers are reused for their TTL
(:mod:`tau.mail.outbound.dnscache`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.names import client, dns, error

from tau.mail.outbound.dnscache import TTLCache, answer_ttl


class DNSTempError(Exception):
    """A temporary failure (timeout, SERVFAIL): the answer is unknown, try again later."""


class NoSuchDomain(Exception):
    """NXDOMAIN: the name does not exist."""


def parse_server(spec: str) -> tuple[str, int]:
    host, sep, port = spec.strip().rpartition(":")
    if not sep:
        return spec.strip(), 53
    return host.strip("[]"), int(port)


class _QuietProtocol(dns.DNSDatagramProtocol):
    noisy = False


class _QuietResolver(client.Resolver):
    """One UDP port per query (source port randomisation), without a log line for each start."""

    def _connectedProtocol(self, interface: str = "") -> Any:
        from twisted.internet.error import CannotListenError

        proto = _QuietProtocol(self, reactor=self._reactor)
        for attempt in range(100):
            try:
                self._reactor.listenUDP(dns.randomSource(), proto, interface=interface)
                return proto
            except CannotListenError:
                if attempt == 99:
                    raise
        return proto


class MailDNS:
    """Async look-ups returning plain Python values."""

    def __init__(self, reactor: Any, server: str = "", timeout: tuple[int, ...] = (1, 3, 5)) -> None:
        self.timeout = timeout
        self.cache = TTLCache(reactor)
        if server:
            self.resolver: Any = _QuietResolver(servers=[parse_server(server)], reactor=reactor, timeout=timeout)
        else:
            self.resolver = _QuietResolver(resolv="/etc/resolv.conf", reactor=reactor, timeout=timeout)

    async def _query(self, method: str, name: str) -> list[Any]:
        key = (method, name.rstrip(".").lower())
        hit = self.cache.get(key)
        if isinstance(hit, NoSuchDomain):
            raise NoSuchDomain(name)
        if hit is not None:
            return list(hit)
        lookup = getattr(self.resolver, method)
        try:
            answers, authority, _ = await lookup(name.rstrip(".").encode("idna") if name else b"",
                                                 timeout=self.timeout)
        except (error.DNSNameError, error.AuthoritativeDomainError) as exc:
            message = exc.args[0] if exc.args else None
            self.cache.put(key, NoSuchDomain(name), answer_ttl((), getattr(message, "authority", ())))
            raise NoSuchDomain(name)
        except (error.DomainError, error.DNSQueryTimeoutError, defer.TimeoutError, defer.CancelledError,
                OSError) as exc:
            raise DNSTempError(f"{name}: {type(exc).__name__}")
        except UnicodeError:
            raise NoSuchDomain(name)
        found = list(answers)
        self.cache.put(key, tuple(found), answer_ttl(found, authority))
        return found

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, host) ordered by preference; [] when the domain has no MX records.
        A null MX (RFC 7505) comes back as ``[(0, "")]``. Raises NoSuchDomain/DNSTempError."""
        out = []
        for rr in await self._query("lookupMailExchange", domain):
            if rr.type == dns.MX:
                out.append((int(rr.payload.preference), rr.payload.name.name.decode("ascii", "replace").rstrip(".")))
        return sorted(out)

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host`` (empty when it has none)."""
        found: list[str] = []
        for method, kind in (("lookupAddress", dns.A), ("lookupIPV6Address", dns.AAAA)):
            try:
                found += [rr.payload.dottedQuad() if kind == dns.A else _ipv6(rr.payload)
                          for rr in await self._query(method, host) if rr.type == kind]
            except NoSuchDomain:
                pass
        return found

    async def a(self, host: str, ipv6: bool = False) -> list[str]:
        kind = dns.AAAA if ipv6 else dns.A
        rrs = await self._query("lookupIPV6Address" if ipv6 else "lookupAddress", host)
        return [_ipv6(rr.payload) if ipv6 else rr.payload.dottedQuad() for rr in rrs if rr.type == kind]

    async def txt(self, name: str) -> list[str]:
        """TXT strings, each record's character-strings joined (RFC 7208 §3.3)."""
        out = []
        for rr in await self._query("lookupText", name):
            if rr.type == dns.TXT:
                out.append(b"".join(rr.payload.data).decode("utf-8", "replace"))
        return out

    async def txt_or_empty(self, name: str) -> list[str]:
        try:
            return await self.txt(name)
        except NoSuchDomain:
            return []


def _ipv6(payload: Any) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET6, payload.address)
