"""The event bus across nodes: Redis pub/sub (txredisapi) behind the ``LocalBus`` interface.

Why it is shaped this way:

- A node delivers its own events to its own subscribers at once, in-process (the same
  ``LocalBus``), and publishes them to Redis for the others; every event carries the publishing
  node's id so the echo coming back from Redis is ignored. A local client never waits for a Redis
  round trip, and a node with Redis down still serves its own clients.
- One ``PSUBSCRIBE prefix*`` per node rather than one channel per topic: the set of topics is
  small and every node runs every service, so filtering happens in the local bus (which already
  understands ``prefix.*`` subscriptions).
- Pub/sub channels are not scoped by Redis database number, so the channel prefix includes it:
  two clusters (or two test runs) on one Redis server with different ``/N`` never hear each other.
- Two connections, each kept alive by a ``ClientService`` (exponential backoff, reconnect forever):
  a subscriber connection (which re-subscribes every time it comes back) and a publisher
  connection (a connection in subscribe mode cannot publish). Publishing while the publisher is
  down drops the remote copy and logs it: the bus carries notifications, state lives in the
  database, and clients resynchronise from it (IMAP on NOOP/IDLE re-entry, messenger on
  ``since=``).
- ``health()`` is registered as ``registry.health_checks["bus"]`` and reports ``degraded`` (not
  failed) while either connection is down: the node still works for the clients attached to it.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import txredisapi
from twisted.application.internet import ClientService
from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.logger import Logger

from tau.bus.local import Handler, LocalBus, Subscription

log = Logger()


def _default(value: Any) -> Any:
    """JSON for the few non-JSON values events carry (times, sets, tuples, bytes)."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(node: str, topic: str, event: dict[str, Any]) -> str:
    return json.dumps({"n": node, "t": topic, "e": event}, default=_default, separators=(",", ":"))


class _Protocol(txredisapi.SubscriberProtocol):  # type: ignore[misc]  # txredisapi has no type hints
    """Subscriber or publisher connection; tells its owner when it is ready and when it is lost."""

    owner: "RedisBus"
    role: str

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.owner._received(message)

    def connectionMade(self) -> Any:
        d = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.owner._up(self))
        return d

    def connectionLost(self, why: Any) -> None:
        super().connectionLost(why)
        self.owner._down(self)


class _Factory(protocol.Factory):
    """Just enough of txredisapi's RedisFactory for one connection driven by a ClientService."""

    isLazy = True
    noisy = False          # no "Starting factory" line per (re)connection

    def __init__(self, owner: "RedisBus", role: str, password: str | None) -> None:
        self.owner, self.role, self.password = owner, role, password

    def buildProtocol(self, addr: Any) -> _Protocol:
        p = _Protocol(charset="utf-8", password=self.password, dbid=None, replyTimeout=5)
        p.factory, p.owner, p.role = self, self.owner, self.role
        return p

    def stopTrying(self) -> None:  # called by txredisapi on an AUTH failure
        log.error("Redis bus: authentication failed")

    def connectionError(self, why: str) -> None:
        log.error("Redis bus: {why}", why=why)


def _retry(attempt: int) -> float:
    return min(0.2 * (2.0 ** min(attempt, 10)), 5.0)


class RedisBus:
    """``publish``/``subscribe`` like ``LocalBus``, shared by every node on the same Redis."""

    def __init__(self, url: str, reactor: Any, node_id: str | None = None) -> None:
        parts = urlsplit(url)
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._reactor = reactor
        self._local = LocalBus()
        #: subscribers that act on an event (send mail, apply an invitation) rather than notify a
        #: client: they must run once in the cluster, on the node where the event happened
        self._own = LocalBus()
        if parts.scheme == "unix":
            endpoint: Any = UNIXClientEndpoint(reactor, parts.path)
            db = 0
        else:
            endpoint = TCP4ClientEndpoint(reactor, parts.hostname or "127.0.0.1", parts.port or 6379, timeout=2)
            db = int(parts.path.strip("/") or 0)
        self.prefix = f"tau:bus:{db}:"
        self._conns: dict[str, _Protocol | None] = {"sub": None, "pub": None}
        self._ready: dict[str, bool] = {"sub": False, "pub": False}
        self._was_up = False
        self.dropped = 0
        # _Factory provides IProtocolFactory through zope.interface, which mypy does not see
        self._services = [ClientService(endpoint, _Factory(self, role, parts.password),  # type: ignore[arg-type]
                                        retryPolicy=_retry)
                          for role in ("sub", "pub")]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        for service in self._services:
            service.startService()

    def stop(self) -> defer.Deferred[Any]:
        return defer.gatherResults([s.stopService() for s in self._services], consumeErrors=True)

    @property
    def connected(self) -> bool:
        return all(self._ready.values())

    def health(self) -> str:
        """For ``registry.health_checks["bus"]``: never raises, so a Redis outage is a degradation
        of cross-node delivery, not an unavailable node."""
        return "ok" if self.connected else "degraded: Redis unreachable, events stay on this node"

    # -- the EventBus interface -------------------------------------------------------------------
    def publish(self, topic: str, event: dict[str, Any]) -> None:
        self._local.publish(topic, event)
        self._own.publish(topic, event)
        conn = self._conns["pub"]
        if conn is None or not self._ready["pub"]:
            self._drop(topic, "Redis down")
            return
        try:
            payload = encode(self.node_id, topic, event)
        except (TypeError, ValueError) as exc:
            self._drop(topic, f"not JSON: {exc}")
            return
        d = conn.publish(self.prefix + topic, payload)
        d.addErrback(lambda f: self._drop(topic, f.getErrorMessage()))

    def subscribe(self, topic: str, handler: Handler) -> Subscription:
        return self._local.subscribe(topic, handler)

    def subscribe_local(self, topic: str, handler: Handler) -> Subscription:
        """Only events published on this node: for handlers with side effects (one per cluster)."""
        return self._own.subscribe(topic, handler)

    # -- connections ----------------------------------------------------------------------------
    def _up(self, conn: _Protocol) -> None:
        if conn.role == "sub":
            d = conn.psubscribe(self.prefix + "*")
            d.addCallback(lambda _: self._ready_now(conn))
            d.addErrback(lambda f: log.error("Redis bus: PSUBSCRIBE failed: {e}", e=f.getErrorMessage()))
        else:
            self._ready_now(conn)

    def _ready_now(self, conn: _Protocol) -> None:
        self._conns[conn.role] = conn
        self._ready[conn.role] = True
        if self.connected:
            log.info("Redis bus {state} (node {node})", state="reconnected" if self._was_up else "connected",
                     node=self.node_id)
            self._was_up = True

    def _down(self, conn: _Protocol) -> None:
        if self._conns.get(conn.role) is conn:
            was = self.connected
            self._conns[conn.role] = None
            self._ready[conn.role] = False
            if was:
                log.warn("Redis bus connection lost; events stay on this node until it is back")

    def _drop(self, topic: str, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warn("Redis bus: {topic} not sent to other nodes ({why}; {n} dropped so far)",
                     topic=topic, why=why, n=self.dropped)

    def _received(self, message: Any) -> None:
        try:
            if isinstance(message, bytes):
                message = message.decode()
            data = json.loads(message)
            node, topic, event = data["n"], data["t"], data["e"]
        except (ValueError, KeyError, TypeError):
            log.warn("Redis bus: malformed message ignored")
            return
        if node == self.node_id:
            return  # our own echo: already delivered locally
        self._local.publish(topic, event)
