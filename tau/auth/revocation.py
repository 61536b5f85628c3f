"""Revoked sessions, known in memory on every node, so a revoked session's access tokens stop at once.

An access token names its session (the refresh-token family) in ``sid``. When a session is
revoked (refresh-token reuse, RFC 7009, password or two-factor change, a disabled or deleted
account) a ``revoked_families`` row is written in the same transaction (tau.auth.revocation_store).
Each node keeps the recent rows in a dict and checks every Bearer request against it: no database
round trip in the steady state. The dict is kept fresh two ways:

- polling: a request finding the last poll older than ``poll`` seconds starts one in the background;
  one finding it older than ``2 × poll`` waits for a new one (an idle node never answers from an
  old list), so a revocation committed by any node or by the CLI is honoured everywhere within
  ``2 × poll`` seconds (``[auth] revocation_poll``, at most 5);
- the bus: the node that revoked publishes the families on ``auth.revoked``; with Redis every
  other node adds them at once.

Connections that outlive a request (WebSockets) ``watch`` their session: they are told when it is
revoked, and while any is watched the node polls on a timer as well, requests or not.

Polls ask for rows stamped since the previous poll's start minus ``SLACK`` seconds (one indexed
range query), which absorbs commit delays and clock differences between nodes up to that much.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.auth import revocation_store
from tau.bus import events

log = Logger()
TOPIC = events.AUTH_REVOKED
SLACK = 60
MAX_POLL = 5.0
PURGE_EVERY = 3600.0



def _poll_failed(failure: Any) -> None:
    """A database outage is waited out (the next poll tries again); anything else is a bug."""
    from tau.storage.faults import is_unavailable

    if is_unavailable(failure.value):
        log.warn("revoked-session poll: storage unavailable ({error})", error=str(failure.value)[:200])
    else:
        log.failure("revoked-session poll failed", failure)

class RevokedSessions:
    def __init__(self, db: Any, clock: Any, bus: Any, poll: float, token_ttl: int,
                 wall: Any = time.time) -> None:
        self._db, self._clock, self._bus, self._wall = db, clock, bus, wall
        self.poll = max(0.5, min(float(poll), MAX_POLL))
        self._ttl = int(token_ttl)
        #: family → revoked_at (wall seconds)
        self._families: dict[str, int] = {}
        self._polled_at: float | None = None     # reactor clock when the last good poll started
        self._since: int = int(wall()) - self._ttl - SLACK
        self._waiters: list[defer.Deferred[Any]] | None = None
        self._purged_at = -math.inf
        #: family → callbacks of the open connections it authenticated
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._timer: Any = None
        bus.subscribe(TOPIC, self._on_event)

    # -- the per-request check ---------------------------------------------------------------------
    async def is_revoked(self, family: str) -> bool:
        """Whether tokens of ``family`` must be refused; waits for the database only when stale."""
        age = math.inf if self._polled_at is None else self._clock.seconds() - self._polled_at
        if age >= 2 * self.poll:
            await self._poll_once()
        elif age >= self.poll and self._waiters is None:
            self._poll_once().addErrback(_poll_failed)
        return family in self._families

    # -- long-lived connections ---------------------------------------------------------------------
    def watch(self, family: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` once ``family`` is revoked; returns the function that stops watching."""
        if family in self._families:
            callback()
            return lambda: None
        self._watchers.setdefault(family, []).append(callback)
        self._schedule()

        def cancel() -> None:
            callbacks = self._watchers.get(family)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._watchers[family]

        return cancel

    def _schedule(self) -> None:
        if self._timer is None or not self._timer.active():
            self._timer = self._clock.callLater(self.poll, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if not self._watchers:
            return
        age = math.inf if self._polled_at is None else self._clock.seconds() - self._polled_at
        if age >= self.poll and self._waiters is None:
            self._poll_once().addErrback(_poll_failed)
        self._schedule()

    # -- keeping it fresh --------------------------------------------------------------------------
    def _poll_once(self) -> defer.Deferred[Any]:
        """One poll at a time: callers arriving while it runs share its result."""
        waiter: defer.Deferred[Any] = defer.Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
            return waiter
        self._waiters = [waiter]
        started, wall = self._clock.seconds(), int(self._wall())

        def settle(result: Any) -> None:
            waiters, self._waiters = self._waiters or [], None
            for d in waiters:
                if isinstance(result, Exception):
                    d.errback(result)
                else:
                    d.callback(None)

        def done(rows: list[tuple[str, int]]) -> None:
            self._learn(rows)
            self._polled_at, self._since = started, wall - SLACK
            self._maybe_purge(wall)
            settle(None)

        def failed(failure: Any) -> None:
            settle(failure.value)

        d = defer.maybeDeferred(self._db.run, "revoked_sessions_poll", revocation_store.revoked_since,
                                self._since, readonly=True)
        d.addCallbacks(done, failed)
        return waiter

    async def changed(self) -> list[str]:
        """After a revocation committed here: learn it now and tell the other nodes (bus)."""
        rows = await self._db.run("revoked_sessions_poll", revocation_store.revoked_since,
                                  self._since, readonly=True)
        learned = self._learn(rows)
        if learned:
            self._bus.publish(TOPIC, {"families": {f: self._families[f] for f in learned}})
        return learned

    def _learn(self, rows: Any) -> list[str]:
        fresh = [(f, int(at)) for f, at in rows if f not in self._families]
        for family, at in fresh:
            self._families[family] = at
            for callback in self._watchers.pop(family, []):
                try:
                    callback()
                except Exception:
                    log.failure("revoked-session watcher failed")
        return [f for f, _ in fresh]

    def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        families = event.get("families")
        if not isinstance(families, dict):
            return
        self._learn([(f, at) for f, at in families.items()
                     if isinstance(f, str) and isinstance(at, int) and len(f) <= 200])

    def _maybe_purge(self, wall: int) -> None:
        """Forget families whose access tokens have all expired (memory now, the table hourly)."""
        before = wall - self._ttl - SLACK
        stale = [f for f, at in self._families.items() if at < before]
        for family in stale:
            del self._families[family]
        now = self._clock.seconds()
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            d = defer.maybeDeferred(self._db.run, "revoked_sessions_purge", revocation_store.purge, before - 3600)
            d.addErrback(lambda f: log.failure("purging revoked sessions failed", f))
