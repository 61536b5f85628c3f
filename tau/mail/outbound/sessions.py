"""Idle SMTP sessions kept for the next message to the same destination (connection caching, as
Postfix's ``smtp_connection_cache_on_demand`` does).

Without it every queued message costs a TCP connection, the greeting, EHLO (and STARTTLS with a
second EHLO) and QUIT: several round trips and a socket set-up/tear-down on both sides for one
MAIL/RCPT/DATA exchange. A session whose last transaction ended with a 2xx end-of-data reply is
parked here, keyed by destination (the recipient domain, or the smarthost); the next delivery to
that destination takes it instead of connecting. A parked session is closed with QUIT after
``IDLE_TIMEOUT`` seconds, once it is ``MAX_AGE`` seconds old, or when the per-domain connection
limit needs the room (``make_room``): parked plus busy sessions never exceed the limit.

A parked session the server has meanwhile closed shows up as a lost connection (or a 421) before
any reply to MAIL FROM; :class:`tau.mail.outbound.transfer.Transfer` then connects afresh, which
is safe because nothing of the message was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from tau.mail.outbound.client import ClientProtocol

IDLE_TIMEOUT = 5.0
MAX_AGE = 300.0


@dataclass(eq=False)
class Parked:
    proto: ClientProtocol
    host: str
    verified: bool                 # certificate checked for ``host`` (MTA-STS enforce, smarthost verify)
    opened: float
    timer: Any = None


@dataclass
class SessionCache:
    reactor: Any
    idle_timeout: float = IDLE_TIMEOUT
    max_age: float = MAX_AGE
    _idle: dict[str, list[Parked]] = field(default_factory=dict)
    _busy: dict[str, int] = field(default_factory=dict)
    _closed: bool = False

    def take(self, key: str, hosts: list[str], verify: bool) -> Parked | None:
        """A live parked session to one of ``hosts`` (earliest in the list first), now busy."""
        parked = self._idle.get(key, [])
        for host in hosts:
            for entry in parked:
                if entry.host == host and (entry.verified or not verify) and entry.proto.alive:
                    self._unpark(key, entry)
                    self.busy(key, +1)
                    return entry
        return None

    def busy(self, key: str, delta: int) -> None:
        """Count a session in use for ``key`` (+1 when a delivery starts one, -1 when it ends)."""
        self._busy[key] = self._busy.get(key, 0) + delta
        if self._busy[key] <= 0:
            del self._busy[key]

    def make_room(self, key: str, limit: int) -> None:
        """Before opening one more connection for ``key``: close parked ones beyond ``limit``."""
        parked = self._idle.get(key, [])
        while parked and len(parked) + self._busy.get(key, 0) > limit:
            self._close(key, parked[0])

    def park(self, key: str, entry: Parked) -> None:
        """Keep a session after a finished transaction (or close it when too old or dead)."""
        self.busy(key, -1)
        if self._closed or not entry.proto.alive or self.reactor.seconds() - entry.opened >= self.max_age:
            defer.Deferred.fromCoroutine(entry.proto.quit())
            return
        entry.timer = self.reactor.callLater(self.idle_timeout, self._close, key, entry)
        entry.proto.on_lost = lambda: self._unpark(key, entry)
        self._idle.setdefault(key, []).append(entry)

    def close_all(self) -> None:
        """QUIT every parked session, and from now on every session that finishes."""
        self._closed = True
        for key, parked in list(self._idle.items()):
            for entry in list(parked):
                self._close(key, entry)

    def idle_count(self, key: str) -> int:
        return len(self._idle.get(key, []))

    def _close(self, key: str, entry: Parked) -> None:
        self._unpark(key, entry)
        defer.Deferred.fromCoroutine(entry.proto.quit())

    def _unpark(self, key: str, entry: Parked) -> None:
        parked = self._idle.get(key, [])
        if entry in parked:
            parked.remove(entry)
            if not parked:
                del self._idle[key]
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        entry.timer = None
        entry.proto.on_lost = None
