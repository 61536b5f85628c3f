"""Presence: ``online|away|busy|offline`` with ``last_seen``, derived from live sockets + explicit status.

A user with no open ``/ws/messages`` socket is ``offline``; with one, they are ``online`` unless
they chose ``away`` or ``busy`` (or ``offline``: appear offline while connected). Only
transitions are reported (``on_change``), so a second tab opening changes nothing.

One node keeps this in memory. With ``[redis] url`` every node shares it in Redis: per user a
sorted set of live connection ids scored by expiry (refreshed by ``refresh`` while the socket
lives, so a crashed node's sockets age out after ``TTL`` seconds) and two hashes for the
explicit status and last_seen. Redis trouble degrades presence, never the socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.logger import Logger

from tau.clock import Clock

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
STATUSES = ("online", "away", "busy", "offline")
TTL = 90  # seconds a Redis connection entry outlives its last refresh
OnChange = Callable[[str, str, float | None], Any]


def _derive(live: bool, explicit: str | None) -> str:
    if not live:
        return "offline"
    return explicit or "online"


class MemoryPresence:
    """Single-node presence."""

    def __init__(self, clock: Any, on_change: OnChange) -> None:
        self._clock = clock
        self._on_change = on_change
        self._conns: dict[str, set[str]] = {}
        self._explicit: dict[str, str] = {}
        self._seen: dict[str, float] = {}

    def _status(self, user: str) -> str:
        return _derive(bool(self._conns.get(user)), self._explicit.get(user))

    def _changed(self, user: str, before: str) -> None:
        after = self._status(user)
        if after != before:
            self._on_change(user, after, self._seen.get(user))

    async def connected(self, user: str, conn: str) -> None:
        before = self._status(user)
        self._conns.setdefault(user, set()).add(conn)
        self._seen[user] = self._clock.seconds()
        self._changed(user, before)

    async def disconnected(self, user: str, conn: str) -> None:
        before = self._status(user)
        conns = self._conns.get(user, set())
        conns.discard(conn)
        if not conns:
            self._conns.pop(user, None)
        self._seen[user] = self._clock.seconds()
        self._changed(user, before)

    async def set_status(self, user: str, status: str) -> None:
        before = self._status(user)
        if status == "online":
            self._explicit.pop(user, None)
        else:
            self._explicit[user] = status
        self._changed(user, before)

    async def refresh(self, entries: list[tuple[str, str]]) -> None:
        """Nothing to keep alive in memory."""

    async def get(self, users: list[str]) -> list[dict[str, Any]]:
        now = self._clock.seconds()
        out = []
        for user in users:
            status = self._status(user)
            seen = now if self._conns.get(user) else self._seen.get(user)
            out.append({"user": user, "status": status, "last_seen": seen})
        return out


class RedisPresence:
    """Presence shared by every node through Redis (txredisapi)."""

    def __init__(self, url: str, on_change: OnChange, clock: Clock, prefix: str = "tau:presence:",
                 redis: Any = None) -> None:
        if redis is None:
            import txredisapi

            parts = urlsplit(url)
            redis = txredisapi.lazyConnectionPool(parts.hostname or "127.0.0.1", parts.port or 6379,
                                                  dbid=int(parts.path.strip("/") or 0), password=parts.password,
                                                  poolsize=4, replyTimeout=2)
        self._redis = redis
        self._clock = clock  # every node's reactor: the wall clock, shared through Redis scores
        self._on_change = on_change
        self._p = prefix

    def _conns_key(self, user: str) -> str:
        return f"{self._p}conns:{user}"

    async def _live(self, user: str) -> int:
        key, now = self._conns_key(user), self._clock.seconds()
        await self._redis.zremrangebyscore(key, "-inf", now)
        return int(await self._redis.zcount(key, now, "+inf"))

    async def _explicit(self, user: str) -> str | None:
        value = await self._redis.hget(self._p + "status", user)
        return value.decode() if isinstance(value, bytes) else value

    async def _status(self, user: str) -> str:
        return _derive(await self._live(user) > 0, await self._explicit(user))

    async def _guard(self, what: str, user: str, work: Callable[[], Any]) -> None:
        try:
            await work()
        except Exception as exc:
            log.warn("presence: Redis unavailable during {what} of {user} ({exc})", what=what, user=user, exc=exc)

    async def _transition(self, user: str, before: str) -> None:
        after = await self._status(user)
        if after != before:
            seen = await self._redis.hget(self._p + "seen", user)
            self._on_change(user, after, float(seen) if seen is not None else None)

    async def _change(self, what: str, user: str, change: Callable[[], Awaitable[Any]], seen: bool = True) -> None:
        """Apply ``change``, stamp last seen (connections), announce the status if it moved."""

        async def work() -> None:
            before = await self._status(user)
            await change()
            if seen:
                await self._redis.hset(self._p + "seen", user, repr(self._clock.seconds()))
            await self._transition(user, before)

        await self._guard(what, user, work)

    async def connected(self, user: str, conn: str) -> None:
        await self._change("connect", user, lambda: self._touch(user, conn, self._clock.seconds() + TTL))

    async def disconnected(self, user: str, conn: str) -> None:
        await self._change("disconnect", user, lambda: self._redis.zrem(self._conns_key(user), conn))

    async def set_status(self, user: str, status: str) -> None:
        async def change() -> None:
            if status == "online":
                await self._redis.hdel(self._p + "status", user)
            else:
                await self._redis.hset(self._p + "status", user, status)

        await self._change("status", user, change, seen=False)

    async def refresh(self, entries: list[tuple[str, str]]) -> None:
        """Keep this node's live sockets from ageing out (called every TTL/3 seconds)."""
        expiry = self._clock.seconds() + TTL
        for user, conn in entries:
            await self._guard("refresh", user, lambda u=user, c=conn: self._touch(u, c, expiry))

    async def _touch(self, user: str, conn: str, expiry: float) -> None:
        await self._redis.zadd(self._conns_key(user), expiry, conn)
        await self._redis.expire(self._conns_key(user), TTL)

    async def get(self, users: list[str]) -> list[dict[str, Any]]:
        out = []
        for user in users:
            try:
                live = await self._live(user)
                status = _derive(live > 0, await self._explicit(user))
                seen = await self._redis.hget(self._p + "seen", user)
                last = self._clock.seconds() if live else (float(seen) if seen is not None else None)
            except Exception as exc:
                log.warn("presence: Redis unavailable ({exc})", exc=exc)
                status, last = "offline", None
            out.append({"user": user, "status": status, "last_seen": last})
        return out

    def close(self) -> Any:
        return self._redis.disconnect()


def create_presence(registry: Registry, on_change: OnChange) -> MemoryPresence | RedisPresence:
    url = registry.config.redis.url
    return RedisPresence(url, on_change, registry.clock) if url else MemoryPresence(registry.clock, on_change)
