"""Presence transitions in memory and through the Redis implementation (against a fake Redis here;
the PostgreSQL e2e run exercises the real one)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from tau.messenger.presence import MemoryPresence, RedisPresence
from tests.support.harness import resolve


class FakeRedis:
    """The few txredisapi calls RedisPresence makes, as coroutines over dicts."""

    def __init__(self) -> None:
        self.zsets: dict[str, dict[str, float]] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("redis down")

    async def zadd(self, key, score, member):
        self._check()
        self.zsets.setdefault(key, {})[member] = score

    async def zrem(self, key, member):
        self._check()
        self.zsets.get(key, {}).pop(member, None)

    async def zremrangebyscore(self, key, low, high):
        self._check()
        zset = self.zsets.get(key, {})
        for member in [m for m, s in zset.items() if s <= float(high)]:
            del zset[member]

    async def zcount(self, key, low, high):
        self._check()
        return sum(1 for s in self.zsets.get(key, {}).values() if float(low) <= s)

    async def zscore(self, key, member):
        self._check()
        return self.zsets.get(key, {}).get(member)

    async def expire(self, key, ttl):
        self._check()

    async def hset(self, key, field, value):
        self._check()
        self.hashes.setdefault(key, {})[field] = value

    async def hget(self, key, field):
        self._check()
        return self.hashes.get(key, {}).get(field)

    async def hdel(self, key, field):
        self._check()
        self.hashes.get(key, {}).pop(field, None)


def _transitions(presence_cls, **kwargs):
    changes: list[tuple[str, str]] = []
    presence = presence_cls(on_change=lambda user, status, seen: changes.append((user, status)), **kwargs)
    return presence, changes


def _exercise(presence, changes) -> None:
    resolve(presence.connected("bob", "c1"))
    resolve(presence.connected("bob", "c2"))  # a second tab changes nothing
    assert changes == [("bob", "online")]
    resolve(presence.set_status("bob", "busy"))
    resolve(presence.disconnected("bob", "c1"))
    assert changes[-1] == ("bob", "busy") and len(changes) == 2
    resolve(presence.disconnected("bob", "c2"))
    assert changes[-1] == ("bob", "offline")
    resolve(presence.set_status("bob", "away"))  # explicit status without a socket: still offline
    assert len(changes) == 3
    items = resolve(presence.get(["bob", "nobody"]))
    assert [(i["user"], i["status"]) for i in items] == [("bob", "offline"), ("nobody", "offline")]
    assert items[0]["last_seen"] is not None and items[1]["last_seen"] is None
    resolve(presence.connected("bob", "c3"))
    assert changes[-1] == ("bob", "away")


def test_memory_presence():
    presence, changes = _transitions(MemoryPresence, clock=MemoryReactorClock())
    _exercise(presence, changes)


def test_redis_presence_and_expiry_and_outage():
    redis, clock = FakeRedis(), MemoryReactorClock()
    clock.advance(1_700_000_000)
    presence, changes = _transitions(RedisPresence, url="", redis=redis, clock=clock)
    _exercise(presence, changes)
    # a crashed node's sockets age out: an entry past its expiry no longer counts
    redis.zsets["tau:presence:conns:carol"] = {"dead": clock.seconds() - 1}
    assert resolve(presence.get(["carol"]))[0]["status"] == "offline"
    resolve(presence.refresh([("bob", "c3")]))
    assert redis.zsets["tau:presence:conns:bob"]["c3"] > clock.seconds() + 60
    redis.down = True  # Redis trouble degrades presence, never raises into the socket
    resolve(presence.connected("dave", "c9"))
    assert resolve(presence.get(["dave"]))[0]["status"] == "offline"


def _lease_rules(presence, changes, clock) -> None:
    from tau.messenger.presence import REST_TTL

    resolve(presence.rest_status("bot", "busy"))  # no socket: the status holds, on a lease
    assert changes == [("bot", "busy")]
    for _ in range(3):  # API activity renews it
        clock.advance(REST_TTL * 0.8)
        resolve(presence.activity("bot"))
    assert resolve(presence.get(["bot"]))[0]["status"] == "busy"
    clock.advance(REST_TTL + 2)  # silence: the lease runs out and that is announced
    assert changes[-1] == ("bot", "offline") and resolve(presence.get(["bot"]))[0]["status"] == "offline"
    resolve(presence.activity("bot"))  # activity without a lease makes nobody present
    assert resolve(presence.get(["bot"]))[0]["status"] == "offline"
    # with a socket open, a REST status is a status only: the socket closing still means offline
    resolve(presence.connected("human", "c1"))
    resolve(presence.rest_status("human", "away"))
    resolve(presence.disconnected("human", "c1"))
    assert changes[-1] == ("human", "offline")


def test_memory_presence_rest_lease():
    clock = MemoryReactorClock()
    presence, changes = _transitions(MemoryPresence, clock=clock)
    _lease_rules(presence, changes, clock)


def test_redis_presence_rest_lease():
    clock = MemoryReactorClock()
    clock.advance(1_700_000_000)
    presence, changes = _transitions(RedisPresence, url="", redis=FakeRedis(), clock=clock)
    _lease_rules(presence, changes, clock)
