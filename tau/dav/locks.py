"""Write locks (RFC 4918 §6, §7, §9.10, §9.11): exclusive and shared, depth 0 or infinity.

Locks live in memory on this node, keyed by the provider's canonical ``lock_key`` (a path
tuple), and expire by the injected clock. They are advisory state for one server process: a
restart drops them, which clients handle as an expired lock (litmus, Finder, davfs2 all
re-LOCK). ``LockManager`` answers the two questions the methods need: may this request modify
these keys (tokens submitted for every covering lock, by the lock's owner), and can a new lock
be granted (no conflicting lock above, at or, for depth infinity, below).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tau.dav.errors import DavError, locked

Key = tuple[str, ...]
DEFAULT_TIMEOUT = 3600
MAX_TIMEOUT = 7 * 24 * 3600


@dataclass
class Lock:
    token: str  # opaquelocktoken:UUID (RFC 4918 §20.5 / RFC 4122)
    key: Key
    href: str
    exclusive: bool
    infinite: bool
    owner_xml: str  # the client's DAV:owner element, returned verbatim
    principal: str  # who may use the token
    timeout: int
    expires: float

    def covers(self, key: Key) -> bool:
        """Does this lock apply to ``key`` (the locked resource, or below it for depth infinity)?"""
        if key == self.key:
            return True
        return self.infinite and key[:len(self.key)] == self.key


def parse_timeout(header: str | None) -> int:
    """``Timeout: Second-600, Infinite`` → seconds, capped (RFC 4918 §10.7)."""
    for item in (header or "").split(","):
        item = item.strip()
        if item.lower() == "infinite":
            return MAX_TIMEOUT
        if item.lower().startswith("second-"):
            try:
                return max(1, min(int(item[7:]), MAX_TIMEOUT))
            except ValueError:
                continue
    return DEFAULT_TIMEOUT


class LockManager:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_token: dict[str, Lock] = {}

    def _live(self) -> Iterable[Lock]:
        now = self._clock()
        expired = [t for t, lock in self._by_token.items() if lock.expires <= now]
        for token in expired:
            del self._by_token[token]
        return list(self._by_token.values())

    def __len__(self) -> int:
        """Live locks (a cheap test before computing keys)."""
        return len(list(self._live()))

    def get(self, token: str) -> Lock | None:
        lock = self._by_token.get(token)
        if lock is not None and lock.expires <= self._clock():
            del self._by_token[token]
            return None
        return lock

    def covering(self, key: Key) -> list[Lock]:
        """Locks on ``key`` or on an ancestor with depth infinity."""
        return [lock for lock in self._live() if lock.covers(key)]

    def within(self, key: Key) -> list[Lock]:
        """Locks on ``key`` or anywhere below it."""
        return [lock for lock in self._live() if lock.key[:len(key)] == key]

    def check_write(self, key: Key, submitted: set[str], principal: str, depth: bool = False,
                    member_of: Key | None = None, href: Callable[[Lock], str] | None = None) -> None:
        """423 unless every lock that protects ``key`` was submitted by its owner (RFC 4918 §7.4).

        ``depth``: the write affects everything below ``key`` too (DELETE, MOVE of a collection).
        ``member_of``: the write adds or removes a member of this collection, whose depth-0 lock
        protects its membership.
        """
        needed = self.covering(key)
        if depth:
            needed += [lock for lock in self.within(key) if lock not in needed]
        if member_of is not None:
            needed += [lock for lock in self.covering(member_of) if lock not in needed]
        for lock in needed:
            if lock.token not in submitted or lock.principal != principal:
                raise locked(href(lock) if href else lock.href)

    def create(self, key: Key, href: str, exclusive: bool, infinite: bool, owner_xml: str,
               principal: str, timeout: int) -> Lock:
        """Grant a lock or raise 423 for a conflict (RFC 4918 §6.1, §9.10.6)."""
        for other in self._live():
            overlaps = other.covers(key) or (infinite and other.key[:len(key)] == key)
            if overlaps and (exclusive or other.exclusive):
                raise DavError(423, "a conflicting lock is held",
                               f"<D:no-conflicting-lock><D:href>{_esc(other.href)}</D:href>"
                               "</D:no-conflicting-lock>")
        lock = Lock(f"opaquelocktoken:{uuid.uuid4()}", key, href, exclusive, infinite, owner_xml,
                    principal, timeout, self._clock() + timeout)
        self._by_token[lock.token] = lock
        return lock

    def refresh(self, token: str, key: Key, principal: str, timeout: int) -> Lock:
        """Refresh a lock that applies to ``key`` (RFC 4918 §9.10.2); 412 otherwise."""
        lock = self.get(token)
        if lock is None or not lock.covers(key) or lock.principal != principal:
            raise DavError(412, "no such lock on this resource", "<D:lock-token-matches-request-uri/>")
        lock.timeout = timeout
        lock.expires = self._clock() + timeout
        return lock

    def remove(self, token: str, key: Key, principal: str) -> None:
        """UNLOCK (RFC 4918 §9.11): the token must apply to the request URI."""
        lock = self.get(token)
        if lock is None or not lock.covers(key):
            raise DavError(409, "lock token does not apply to this resource",
                           "<D:lock-token-matches-request-uri/>")
        if lock.principal != principal:
            raise DavError(403, "the lock belongs to someone else")
        del self._by_token[token]

    def drop_within(self, key: Key) -> None:
        """Forget every lock at or below ``key`` (after DELETE or MOVE of the resource)."""
        for lock in self.within(key):
            self._by_token.pop(lock.token, None)


def _esc(value: str) -> str:
    from xml.sax.saxutils import escape

    return escape(value)


def lock_discovery(locks: list[Lock], now: float) -> str:
    """The inner XML of ``DAV:lockdiscovery`` (RFC 4918 §15.8)."""
    out = []
    for lock in locks:
        left = max(0, int(lock.expires - now))
        out.append("<D:activelock><D:locktype><D:write/></D:locktype>"
                   f"<D:lockscope><D:{'exclusive' if lock.exclusive else 'shared'}/></D:lockscope>"
                   f"<D:depth>{'infinity' if lock.infinite else '0'}</D:depth>{lock.owner_xml}"
                   f"<D:timeout>Second-{left}</D:timeout>"
                   f"<D:locktoken><D:href>{_esc(lock.token)}</D:href></D:locktoken>"
                   f"<D:lockroot><D:href>{_esc(lock.href)}</D:href></D:lockroot></D:activelock>")
    return "".join(out)


SUPPORTED_LOCK = ("<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
                  "</D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/>"
                  "</D:locktype></D:lockentry>")

__all__ = ["Lock", "LockManager", "SUPPORTED_LOCK", "lock_discovery", "parse_timeout"]
