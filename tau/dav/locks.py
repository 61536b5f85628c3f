"""Write locks (RFC 4918 §6, §7, §9.10, §9.11): exclusive and shared, depth 0 or infinity.

Locks are keyed by the provider's canonical ``lock_key`` (a path tuple) and expire by the
injected clock. They live in a ``LockStore`` — the ``dav_locks`` table when the server has a
database, so every node behind the load balancer sees the same locks (issue 9), or memory for a
bare server. Each request works on a ``LockSnapshot``: the locks relevant to its paths, loaded
once before the method runs, so the checks the methods make stay synchronous. Granting,
refreshing and removing write through to the store; granting is checked for conflicts by the
store itself, atomically against a concurrent grant on another node.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from xml.sax.saxutils import escape

from tau.dav.errors import DavError, locked

Key = tuple[str, ...]
DEFAULT_TIMEOUT = 3600
#: the longest lock granted unless the server is told otherwise (``[dav] max_lock_timeout``):
#: ``Timeout: Infinite`` and anything longer get this, and the response says so (RFC 4918 §10.7)
MAX_TIMEOUT = 3600


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

    def within(self, key: Key) -> bool:
        """Is this lock on ``key`` or below it?"""
        return self.key[:len(key)] == key

    def conflicts(self, key: Key, exclusive: bool, infinite: bool) -> bool:
        """Would a new lock on ``key`` clash with this one (RFC 4918 §6.1)?"""
        overlaps = self.covers(key) or (infinite and self.within(key))
        return overlaps and (exclusive or self.exclusive)


def conflict_error(other: Lock) -> DavError:
    return DavError(423, "a conflicting lock is held",
                    f"<D:no-conflicting-lock><D:href>{escape(other.href)}</D:href></D:no-conflicting-lock>")


def parse_timeout(header: str | None, maximum: int = MAX_TIMEOUT) -> int:
    """``Timeout: Second-600, Infinite`` → seconds, capped at ``maximum`` (RFC 4918 §10.7)."""
    for item in (header or "").split(","):
        item = item.strip()
        if item.lower() == "infinite":
            return maximum
        if item.lower().startswith("second-"):
            try:
                return max(1, min(int(item[7:]), maximum))
            except ValueError:
                continue
    return min(DEFAULT_TIMEOUT, maximum)


class LockStore(Protocol):
    """Where locks live; every method ignores expired locks."""

    async def load(self, keys: Iterable[Key], deep: Iterable[Key]) -> list[Lock]:
        """Live locks on ``keys`` or their ancestors, and anywhere at or below ``deep``."""

    async def grant(self, lock: Lock) -> None:
        """Store ``lock`` unless a live lock conflicts (then raise 423), atomically."""

    async def refresh(self, lock: Lock) -> bool:
        """Store ``lock.timeout``/``lock.expires``; False when the lock is gone."""

    async def remove(self, token: str) -> None: ...

    async def drop_within(self, key: Key) -> None:
        """Forget every lock at or below ``key``."""


class MemoryLockStore:
    """Locks of one process (a server without a database: tests, tools)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._by_token: dict[str, Lock] = {}

    def _live(self) -> list[Lock]:
        now = self._clock()
        for token in [t for t, lock in self._by_token.items() if lock.expires <= now]:
            del self._by_token[token]
        return list(self._by_token.values())

    async def load(self, keys: Iterable[Key], deep: Iterable[Key]) -> list[Lock]:
        keys, deep = list(keys), list(deep)
        return [lock for lock in self._live()
                if any(key[:len(lock.key)] == lock.key for key in keys) or any(lock.within(k) for k in deep)]

    async def grant(self, lock: Lock) -> None:
        for other in self._live():
            if other.conflicts(lock.key, lock.exclusive, lock.infinite):
                raise conflict_error(other)
        self._by_token[lock.token] = lock

    async def refresh(self, lock: Lock) -> bool:
        return lock.token in {live.token for live in self._live()}

    async def remove(self, token: str) -> None:
        self._by_token.pop(token, None)

    async def drop_within(self, key: Key) -> None:
        for lock in self._live():
            if lock.within(key):
                del self._by_token[lock.token]


class LockSnapshot:
    """The locks one request can see: synchronous checks, write-through mutations."""

    def __init__(self, store: LockStore, clock: Callable[[], float], locks: Iterable[Lock] = ()) -> None:
        self._store = store
        self._clock = clock
        self._by_token = {lock.token: lock for lock in locks}

    def add(self, locks: Iterable[Lock]) -> None:
        for lock in locks:
            self._by_token.setdefault(lock.token, lock)

    def _live(self) -> list[Lock]:
        now = self._clock()
        return [lock for lock in self._by_token.values() if lock.expires > now]

    def __len__(self) -> int:
        return len(self._live())

    def get(self, token: str) -> Lock | None:
        lock = self._by_token.get(token)
        return lock if lock is not None and lock.expires > self._clock() else None

    def covering(self, key: Key) -> list[Lock]:
        """Locks on ``key`` or on an ancestor with depth infinity."""
        return [lock for lock in self._live() if lock.covers(key)]

    def within(self, key: Key) -> list[Lock]:
        """Locks on ``key`` or anywhere below it."""
        return [lock for lock in self._live() if lock.within(key)]

    def check_write(self, key: Key, submitted: set[str], principal: str, depth: bool = False,
                    member_of: Key | None = None, href: Callable[[Lock], str] | None = None,
                    overrides: Callable[[Lock], bool] | None = None) -> list[Lock]:
        """423 unless every lock that protects ``key`` was submitted by its owner (RFC 4918 §7.4).

        ``depth``: the write affects everything below ``key`` too (DELETE, MOVE of a collection).
        ``member_of``: the write adds or removes a member of this collection, whose depth-0 lock
        protects its membership.
        ``overrides``: locks the writer may break (the tree's owner over a share recipient's
        lock); they do not block, and are returned so the caller can remove them.
        """
        needed = self.covering(key)
        if depth:
            needed += [lock for lock in self.within(key) if lock not in needed]
        if member_of is not None:
            needed += [lock for lock in self.covering(member_of) if lock not in needed]
        broken: list[Lock] = []
        for lock in needed:
            if lock.token not in submitted or lock.principal != principal:
                if overrides is not None and overrides(lock):
                    broken.append(lock)
                    continue
                raise locked(href(lock) if href else lock.href)
        return broken

    async def create(self, key: Key, href: str, exclusive: bool, infinite: bool, owner_xml: str,
                     principal: str, timeout: int) -> Lock:
        """Grant a lock or raise 423 for a conflict (RFC 4918 §6.1, §9.10.6)."""
        for other in self._live():  # known conflicts answer without a write
            if other.conflicts(key, exclusive, infinite):
                raise conflict_error(other)
        lock = Lock(f"opaquelocktoken:{uuid.uuid4()}", key, href, exclusive, infinite, owner_xml,
                    principal, timeout, self._clock() + timeout)
        await self._store.grant(lock)
        self._by_token[lock.token] = lock
        return lock

    async def refresh(self, token: str, key: Key, principal: str, timeout: int) -> Lock:
        """Refresh a lock that applies to ``key`` (RFC 4918 §9.10.2); 412 otherwise."""
        lock = self.get(token)
        if lock is None or not lock.covers(key) or lock.principal != principal:
            raise DavError(412, "no such lock on this resource", "<D:lock-token-matches-request-uri/>")
        lock.timeout = timeout
        lock.expires = self._clock() + timeout
        if not await self._store.refresh(lock):
            del self._by_token[token]
            raise DavError(412, "no such lock on this resource", "<D:lock-token-matches-request-uri/>")
        return lock

    async def remove(self, token: str, key: Key, principal: str,
                     overrides: Callable[[Lock], bool] | None = None) -> None:
        """UNLOCK (RFC 4918 §9.11): the token must apply to the request URI.

        Only the lock's holder may remove it, or someone ``overrides`` allows (the tree's owner).
        """
        lock = self.get(token)
        if lock is None or not lock.covers(key):
            raise DavError(409, "lock token does not apply to this resource",
                           "<D:lock-token-matches-request-uri/>")
        if lock.principal != principal and not (overrides is not None and overrides(lock)):
            raise DavError(403, "the lock belongs to someone else")
        await self._store.remove(token)
        del self._by_token[token]

    async def forget(self, locks: Iterable[Lock]) -> None:
        """Remove locks an overriding write broke."""
        for lock in locks:
            await self._store.remove(lock.token)
            self._by_token.pop(lock.token, None)

    async def drop_within(self, key: Key) -> None:
        """Forget every lock at or below ``key`` (after DELETE or MOVE of the resource)."""
        await self._store.drop_within(key)
        for lock in self.within(key):
            self._by_token.pop(lock.token, None)


def lock_discovery(locks: list[Lock], now: float) -> str:
    """The inner XML of ``DAV:lockdiscovery`` (RFC 4918 §15.8)."""
    out = []
    for lock in locks:
        left = max(0, int(lock.expires - now))
        out.append("<D:activelock><D:locktype><D:write/></D:locktype>"
                   f"<D:lockscope><D:{'exclusive' if lock.exclusive else 'shared'}/></D:lockscope>"
                   f"<D:depth>{'infinity' if lock.infinite else '0'}</D:depth>{lock.owner_xml}"
                   f"<D:timeout>Second-{left}</D:timeout>"
                   f"<D:locktoken><D:href>{escape(lock.token)}</D:href></D:locktoken>"
                   f"<D:lockroot><D:href>{escape(lock.href)}</D:href></D:lockroot></D:activelock>")
    return "".join(out)


SUPPORTED_LOCK = ("<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
                  "</D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/>"
                  "</D:locktype></D:lockentry>")

__all__ = ["Lock", "LockSnapshot", "LockStore", "MemoryLockStore", "SUPPORTED_LOCK", "lock_discovery",
           "parse_timeout"]
