"""Connection caps per client address and in total, for every listener (``[limits]``).

One attacker address must not hold thousands of sessions (each costs a socket, buffers and a
protocol object): past ``<family>_connections_per_ip`` a new connection gets its protocol's refusal
line (SMTP ``421 4.7.0``, IMAP ``* BYE``, HTTP ``503``) and is closed, without building the real
protocol. Addresses in ``trusted_networks`` (loopback by default: a webmail or reverse proxy on the
same host) are counted but never refused by the per-address cap. IPv6 clients are counted per /64,
the block a single host usually gets. ``connections_total`` bounds all listeners together so a
distributed flood cannot use up the process's file descriptors.

Implemented once as a wrapping factory (``CappedFactory``, the pattern of Twisted's
``policies.LimitConnectionsByPeer``) installed by ``AppHost.add_listener`` outside any TLS; the
served factory's ``refusal`` attribute is its protocol's answer (else the connection is just
closed), sent through TLS on implicit-TLS ports so the client can read it.
"""

from __future__ import annotations

import ipaddress
import resource
from collections.abc import Iterable
from typing import Any

from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

log = Logger()

#: listener key → family whose listeners share one per-address count
FAMILIES = {"smtp": "smtp", "submission": "smtp", "submissions": "smtp", "imap": "imap", "imaps": "imap",
            "http": "http", "https": "http", "managesieve": "imap"}
#: seconds a refused connection may take to take its refusal (a TLS handshake, a full window)
REFUSAL_GRACE = 10.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_key(host: str) -> str:
    """The string connections are counted under: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a UNIX socket or something unexpected: counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def auto_total() -> int:
    """80% of the open-file limit (the rest is for the database, blobs, logs)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(64, int(soft * 0.8))


class ConnectionCaps:
    """Open connections per (family, address) and in total; shared by every listener."""

    def __init__(self, per_ip: dict[str, int], total: int, trusted: Iterable[str], metrics: Any = None) -> None:
        self.per_ip = per_ip
        self.total = total
        self.trusted: list[Network] = [ipaddress.ip_network(n, strict=False) for n in trusted]
        self.open_total = 0
        self._open: dict[tuple[str, str], int] = {}
        self._warned: set[tuple[str, str]] = set()
        self._metrics = metrics

    @classmethod
    def from_config(cls, config: Any, metrics: Any = None) -> ConnectionCaps:
        limits = config.limits
        per_ip = {f: getattr(limits, f"{f}_connections_per_ip") for f in ("smtp", "imap", "http")}
        return cls(per_ip, limits.connections_total or auto_total(), limits.trusted_networks, metrics)

    def is_trusted(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted)

    def count(self, family: str, host: str) -> int:
        return self._open.get((family, address_key(host)), 0)

    def acquire(self, family: str, host: str) -> tuple[str, str] | None:
        """The slot taken for this connection, or None when it must be refused."""
        slot = (family, address_key(host))
        count = self._open.get(slot, 0)
        trusted = self.is_trusted(host)
        if not trusted and (count >= self.per_ip.get(family, 1 << 30) or self.open_total >= self.total):
            self._refused(slot, count)
            return None
        self._open[slot] = count + 1
        self.open_total += 1
        return slot

    def release(self, slot: tuple[str, str]) -> None:
        self.open_total -= 1
        count = self._open.get(slot, 0) - 1
        if count > 0:
            self._open[slot] = count
        else:
            self._open.pop(slot, None)
        self._warned.discard(slot)

    def _refused(self, slot: tuple[str, str], count: int) -> None:
        if self._metrics is not None:
            self._metrics.rate_limited.labels(f"connections_{slot[0]}").inc()
        if slot not in self._warned:  # once per burst, not once per refused connection
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned.add(slot)
            log.warn("connection_refused family={family} client={client} open={open} total={total}",
                     family=slot[0], client=slot[1], open=count, total=self.open_total)


class Refusal(Protocol):
    """Say the protocol's refusal line, then close (abort if the client does not take it)."""

    def __init__(self, line: bytes, clock: Any) -> None:
        self.line = line
        self.clock = clock
        self._abort: Any = None

    def connectionMade(self) -> None:
        transport: Any = self.transport
        if self.line:
            transport.write(self.line)
        transport.loseConnection()
        self._abort = self.clock.callLater(REFUSAL_GRACE, transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        pass  # whatever the client says, the answer is the same

    def connectionLost(self, reason: Any = None) -> None:
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None


class _Counted(ProtocolWrapper):
    """The outermost protocol of a capped connection: gives its slot back when the connection
    ends, whatever protocol the connection was handed to meanwhile (a WebSocket takeover
    replaces the wrapped protocol, so a hook on the HTTP channel would never run)."""

    slot: tuple[str, str] | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            self.factory.caps.release(slot)
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class CappedFactory(WrappingFactory):
    """Wraps a listener's factory (TLS included): counts its connections, refuses those over the
    caps with the protocol's ``refusal`` line, sent through TLS on an implicit-TLS listener."""

    protocol = _Counted
    noisy = False

    def __init__(self, wrapped: Any, caps: ConnectionCaps, family: str, clock: Any) -> None:
        super().__init__(wrapped)  # type: ignore[no-untyped-call]
        self.caps = caps
        self.family = family
        self.clock = clock
        self._tls = isinstance(wrapped, TLSMemoryBIOFactory)
        self.served = wrapped.wrappedFactory if self._tls else wrapped

    def buildProtocol(self, addr: Any) -> Any:
        host = str(getattr(addr, "host", addr))
        slot = self.caps.acquire(self.family, host)
        if slot is None:
            refusal = Refusal(getattr(self.served, "refusal", b""), self.clock)
            return TLSMemoryBIOProtocol(self.wrappedFactory, refusal) if self._tls else refusal
        try:
            inner = self.wrappedFactory.buildProtocol(addr)
        except BaseException:
            self.caps.release(slot)
            raise
        if inner is None:
            self.caps.release(slot)
            return None
        counted = self.protocol(self, inner)  # type: ignore[arg-type]
        counted.slot = slot
        return counted
