"""Presence: ``online|away|busy|offline`` with ``last_seen``, derived from live sockets + explicit status.

The rules (issue 20, after Matrix's explicit presence):

- A user is *live* while a ``/ws/messages`` socket of theirs is open, or while a REST lease runs.
  A live user shows the status they chose (``online`` unless they chose ``away``, ``busy`` or
  ``offline`` — appear offline); a user who is not live is ``offline``.
- ``PUT /api/presence`` (REST) sets the chosen status. Made while no socket of the user is open
  (a REST-only client, a bot), it also starts a lease of ``REST_TTL`` seconds; every
  authenticated chat API call of that user (``/api/messages``, ``/api/conversations``,
  ``/api/keys``, ``/api/presence``) while the lease runs renews it. When it runs out with no
  socket open the user goes ``offline``, announced like a socket closing. ``PUT offline``, or a
  ``PUT`` while a socket is open (the socket then drives online/offline), ends it.
- A ``presence`` frame on a socket sets the chosen status only; sockets still drive
  online/offline by opening and closing. The chosen status is kept for the next time.
- ``last_seen`` is now while a socket is open; otherwise the last socket close or the last chat
  API call under a lease (stamped at most every ``ACTIVITY_EVERY`` seconds per node).
- Only transitions are reported (``on_change``), so a second tab opening changes nothing; REST
  and socket viewers get the same status (``presence`` frames come from ``on_change``).

One node keeps this in memory. With ``[redis] url`` every node shares it in Redis: per user a
sorted set of live connection ids scored by expiry (refreshed by ``refresh`` while the socket
lives, so a crashed node's sockets age out after ``TTL`` seconds) and two hashes for the
explicit status and last_seen. Redis trouble degrades presence, never the socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.logger import Logger

from tau.clock import Clock

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
STATUSES = ("online", "away", "busy", "offline")
TTL = 90  # seconds a Redis connection entry outlives its last refresh
REST_TTL = 300  # seconds a status set over REST holds without further API activity
ACTIVITY_EVERY = 5.0  # a node renews a lease / stamps last_seen at most this often per user
REST = "rest"  # the lease's member among a user's connections
OnChange = Callable[[str, str, float | None], Any]


def _derive(live: bool, explicit: str | None) -> str:
    if not live:
        return "offline"
    return explicit or "online"


class _Leases:
    """The timers that announce ``offline`` when a REST lease runs out with no socket open."""

    _clock: Any
    _on_change: OnChange

    def _init_leases(self) -> None:
        self._timers: dict[str, Any] = {}
        self._last_activity: dict[str, float] = {}

    def _due(self, user: str) -> bool:
        """Throttle: True when this node has not renewed ``user`` in the last ``ACTIVITY_EVERY``."""
        now = self._clock.seconds()
        if now - self._last_activity.get(user, -ACTIVITY_EVERY) < ACTIVITY_EVERY:
            return False
        self._last_activity[user] = now
        return True

    def _arm(self, user: str) -> None:
        timer = self._timers.pop(user, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._timers[user] = self._clock.callLater(REST_TTL + 1, self._expired, user)

    def _disarm(self, user: str) -> None:
        timer = self._timers.pop(user, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _expired(self, user: str) -> Any:
        self._timers.pop(user, None)
        self._last_activity.pop(user, None)
        return defer.ensureDeferred(self._lease_over(user))

    async def _lease_over(self, user: str) -> None:
        """Called when the lease ran out: announce ``offline`` if nothing else keeps the user live."""


class MemoryPresence(_Leases):
    """Single-node presence."""

    def __init__(self, clock: Any, on_change: OnChange) -> None:
        self._clock = clock
        self._on_change = on_change
        self._conns: dict[str, set[str]] = {}
        self._lease: dict[str, float] = {}
        self._explicit: dict[str, str] = {}
        self._seen: dict[str, float] = {}
        self._init_leases()

    def _leased(self, user: str) -> bool:
        return self._lease.get(user, 0.0) > self._clock.seconds()

    def _status(self, user: str) -> str:
        return _derive(bool(self._conns.get(user)) or self._leased(user), self._explicit.get(user))

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

    async def rest_status(self, user: str, status: str) -> None:
        """``PUT /api/presence``: the chosen status, and a lease that keeps the user live."""
        before = self._status(user)
        now = self._clock.seconds()
        if status == "online":
            self._explicit.pop(user, None)
        else:
            self._explicit[user] = status
        if status == "offline" or self._conns.get(user):  # a socket drives it: no lease
            self._lease.pop(user, None)
            self._disarm(user)
        else:
            self._lease[user] = now + REST_TTL
            self._arm(user)
        self._seen[user] = now
        self._changed(user, before)

    async def activity(self, user: str) -> None:
        """An authenticated API call: renews a running lease and stamps last_seen."""
        if not self._leased(user) or not self._due(user):
            return
        self._lease[user] = self._clock.seconds() + REST_TTL
        self._seen[user] = self._clock.seconds()
        self._arm(user)

    async def _lease_over(self, user: str) -> None:
        if not self._conns.get(user) and not self._leased(user):
            self._lease.pop(user, None)
            if self._explicit.get(user) != "offline":
                self._on_change(user, "offline", self._seen.get(user))

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


class RedisPresence(_Leases):
    """Presence shared by every node through Redis (txredisapi); the REST lease is the ``rest``
    member of the user's connection set, scored by its expiry like a socket's entry."""

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
        self._init_leases()

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

    async def rest_status(self, user: str, status: str) -> None:
        """``PUT /api/presence``: the chosen status, and a lease that keeps the user live."""
        leasing = status != "offline"

        async def change() -> None:
            nonlocal leasing
            if status == "online":
                await self._redis.hdel(self._p + "status", user)
            else:
                await self._redis.hset(self._p + "status", user, status)
            leased = await self._leased(user)
            leasing = leasing and await self._live(user) - leased == 0  # a socket drives it: no lease
            if leasing:
                await self._touch(user, REST, self._clock.seconds() + REST_TTL)
            else:
                await self._redis.zrem(self._conns_key(user), REST)

        await self._change("status", user, change)
        if leasing:
            self._arm(user)
        else:
            self._disarm(user)

    async def _leased(self, user: str) -> bool:
        score = await self._redis.zscore(self._conns_key(user), REST)
        return score is not None and float(score) > self._clock.seconds()

    async def activity(self, user: str) -> None:
        """An authenticated API call: renews a running lease and stamps last_seen."""
        if not self._due(user):
            return

        async def work() -> None:
            if await self._leased(user):
                now = self._clock.seconds()
                await self._touch(user, REST, now + REST_TTL)
                await self._redis.hset(self._p + "seen", user, repr(now))
                self._arm(user)

        await self._guard("activity", user, work)

    async def _lease_over(self, user: str) -> None:
        async def work() -> None:
            if await self._status(user) == "offline" and await self._explicit(user) != "offline":
                seen = await self._redis.hget(self._p + "seen", user)
                self._on_change(user, "offline", float(seen) if seen is not None else None)

        await self._guard("lease", user, work)

    async def refresh(self, entries: list[tuple[str, str]]) -> None:
        """Keep this node's live sockets from ageing out (called every TTL/3 seconds)."""
        expiry = self._clock.seconds() + TTL
        for user, conn in entries:
            await self._guard("refresh", user, lambda u=user, c=conn: self._touch(u, c, expiry))

    async def _touch(self, user: str, conn: str, expiry: float) -> None:
        await self._redis.zadd(self._conns_key(user), expiry, conn)
        await self._redis.expire(self._conns_key(user), max(TTL, REST_TTL) + 1)

    async def get(self, users: list[str]) -> list[dict[str, Any]]:
        out = []
        for user in users:
            try:
                live = await self._live(user)
                status = _derive(live > 0, await self._explicit(user))
                seen = await self._redis.hget(self._p + "seen", user)
                sockets = live - (1 if live and await self._leased(user) else 0)
                last = self._clock.seconds() if sockets else (float(seen) if seen is not None else None)
            except Exception as exc:
                log.warn("presence: Redis unavailable ({exc})", exc=exc)
                status, last = "offline", None
            out.append({"user": user, "status": status, "last_seen": last})
        return out

    def close(self) -> Any:
        for user in list(self._timers):
            self._disarm(user)
        return self._redis.disconnect()


def create_presence(registry: Registry, on_change: OnChange) -> MemoryPresence | RedisPresence:
    url = registry.config.redis.url
    return RedisPresence(url, on_change, registry.clock) if url else MemoryPresence(registry.clock, on_change)
