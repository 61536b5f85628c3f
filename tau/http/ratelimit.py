"""Rate limits per client IP (per minute) and per user (per hour): 429 + ``Retry-After``.

The contract is literal — with a limit of 100 the 101st request in a minute is refused — so
the limiter is a sliding window, not a refilling token bucket (a bucket that refills at 100 per
minute lets a slow loop of 101 requests through). The window is cut into 60 slots; a key keeps
a count per slot, and the requests of the last 61 slots (at least one full window) are summed,
so no window of that length ever admits more than the limit. ``Retry-After`` is when the oldest
counted slot leaves the window. Bursts up to the limit are allowed at once.

One node keeps the slots in memory; with ``[redis] url`` set they live in a Redis hash updated
by one Lua script (atomic, Redis's own clock), so every node shares them. If Redis cannot be
reached the limiter fails open and logs it: availability over strictness.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.logger import Logger

from tau.http.errors import HttpError

if TYPE_CHECKING:
    from tau.auth.security_events import SecurityEvents
    from tau.registry import Registry

log = Logger()
MAX_BUCKETS = 200_000
SLOTS = 60


class MemoryBuckets:
    """Sliding-window counters in memory, one per key (the name is kept from the first design)."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._buckets: dict[str, dict[int, int]] = {}

    async def take(self, key: str, capacity: int, per_seconds: float) -> float:
        """0 when allowed (and counted); else seconds until a request will be allowed."""
        now = self._clock.seconds()
        slot_len = per_seconds / SLOTS
        current = math.floor(now / slot_len)
        counts = self._buckets.get(key)
        if counts is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()  # crude but bounded: a flood of keys cannot exhaust memory
            counts = self._buckets[key] = {}
        for slot in [s for s in counts if s <= current - SLOTS - 1]:
            del counts[slot]
        if sum(counts.values()) >= capacity:
            oldest = min(counts)
            return max((oldest + SLOTS + 1) * slot_len - now, 0.001)
        counts[current] = counts.get(current, 0) + 1
        return 0.0


_SCRIPT = """
local limit = tonumber(ARGV[1])
local slot_len = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local current = math.floor(now / slot_len)
local h = redis.call('HGETALL', KEYS[1])
local total = 0
local oldest = nil
for i = 1, #h, 2 do
  local s = tonumber(h[i])
  if s <= current - slots - 1 then
    redis.call('HDEL', KEYS[1], h[i])
  else
    total = total + tonumber(h[i + 1])
    if oldest == nil or s < oldest then oldest = s end
  end
end
if total >= limit then
  return tostring(math.max((oldest + slots + 1) * slot_len - now, 0.001))
end
redis.call('HINCRBY', KEYS[1], tostring(current), 1)
redis.call('PEXPIRE', KEYS[1], math.ceil((slots + 2) * slot_len * 1000))
return '0'
"""


class RedisBuckets:
    #: seconds a request waits for Redis before it is let through
    TIMEOUT = 0.5
    #: seconds Redis is left alone after a failure (requests pass at once meanwhile)
    BACKOFF = 5.0

    def __init__(self, url: str, reactor: Any) -> None:
        import txredisapi

        self._reactor = reactor
        self._down_until = 0.0

        parts = urlsplit(url)
        db = int(parts.path.strip("/") or 0)
        self._redis = txredisapi.lazyConnectionPool(parts.hostname or "127.0.0.1", parts.port or 6379,
                                                    dbid=db, password=parts.password, poolsize=4,
                                                    replyTimeout=2)
        self.url = url

    async def take(self, key: str, capacity: int, per_seconds: float) -> float:
        # A lazy txredisapi pool queues commands until it connects, so an unreachable Redis
        # would hold every request forever: bound the wait, then skip Redis for a while.
        if self._reactor.seconds() < self._down_until:
            return 0.0
        try:
            d = self._redis.eval(_SCRIPT, ["tau:rl:" + key], [capacity, per_seconds / SLOTS, SLOTS])
            d.addTimeout(self.TIMEOUT, self._reactor)
            wait = await d
            return float(wait)
        except Exception as exc:
            self._down_until = self._reactor.seconds() + self.BACKOFF
            log.warn("rate limiter: Redis unavailable, allowing requests for {backoff:.0f} s ({exc!r})",
                     backoff=self.BACKOFF, exc=exc)
            return 0.0

    def close(self) -> Any:
        return self._redis.disconnect()


class RateLimiter:
    def __init__(self, buckets: Any, per_minute_ip: int, per_hour_user: int, metrics: Any = None,
                 events: SecurityEvents | None = None) -> None:
        self.buckets = buckets
        self.per_minute_ip = per_minute_ip
        self.per_hour_user = per_hour_user
        self._metrics = metrics
        self._events = events  # the admin page's recent security events: once per source and minute

    async def check_ip(self, ip: str) -> None:
        if self.per_minute_ip > 0:
            await self._check("ip:" + ip, self.per_minute_ip, 60.0, "ip")

    async def check_user(self, address: str) -> None:
        if self.per_hour_user > 0:
            await self._check("user:" + address, self.per_hour_user, 3600.0, "user")

    async def _check(self, key: str, capacity: int, window: float, scope: str) -> None:
        wait = await self.buckets.take(key, capacity, window)
        if wait > 0:
            if self._metrics is not None:
                self._metrics.rate_limited.labels(scope).inc()
            retry = max(1, math.ceil(wait))
            if self._events is not None:
                self._events.record_once("rate_limited", key, 60.0, scope=scope, source=key.split(":", 1)[1][:254],
                                         retry_after=retry)
            raise HttpError(429, "rate_limited", f"too many requests; retry in {retry} s",
                            headers={"Retry-After": str(retry)})


def create_rate_limiter(registry: Registry) -> RateLimiter:
    limits = registry.config.limits
    url = registry.config.redis.url
    buckets = RedisBuckets(url, registry.reactor) if url else MemoryBuckets(registry.clock)
    return RateLimiter(buckets, limits.requests_per_minute_ip, limits.requests_per_hour_user, registry.metrics,
                       registry.throttle.events)
