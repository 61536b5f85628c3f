"""At most a few argon2id computations at once, and a bounded queue of checks waiting for them.

Each hash costs ~100 ms of CPU and 64 MiB: without a bound, a burst of anonymous guesses
(share-link passwords, logins) fills every thread and grows the process by hundreds of MB while
other users' downloads wait. ``HashGate.run`` hands at most ``concurrency`` calls to the hashing
pool; up to ``queue`` more wait in order; beyond that the call fails at once with ``HashBusy``
(a ``LoginThrottled``, so every protocol already answers it as "try again later": HTTP 429/503 +
``Retry-After``, IMAP ``NO [UNAVAILABLE]``, SMTP ``454 4.7.0``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.logger import Logger

from tau.auth.authenticator import LoginThrottled

log = Logger()
T = TypeVar("T")
RETRY_AFTER = 2.0


class HashBusy(LoginThrottled):
    """Too many password checks are waiting already; nothing was checked."""

    def __init__(self, retry_after: float = RETRY_AFTER) -> None:
        super().__init__(retry_after)
        self.args = (f"server busy checking passwords; retry in {int(retry_after) + 1} s",)


class HashGate:
    def __init__(self, run: Callable[..., defer.Deferred[Any]], concurrency: int, queue: int) -> None:
        self._run = run
        self.concurrency = concurrency
        self.queue = queue
        self.active = 0
        self.peak = 0  # the most ever in flight (tests and metrics read it)
        self._waiting: deque[tuple[defer.Deferred[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """``fn(*args)`` in the hashing pool when a slot is free; HashBusy when the queue is full."""
        if self.active < self.concurrency:
            return self._start(fn, args, kwargs)
        if len(self._waiting) >= self.queue:
            log.warn("password hashing busy: {active} running, {waiting} waiting; refusing",
                     active=self.active, waiting=len(self._waiting))
            return defer.fail(HashBusy())
        d: defer.Deferred[T] = defer.Deferred(lambda d: self._cancel(d))
        self._waiting.append((d, fn, args, kwargs))
        return d

    def _cancel(self, d: defer.Deferred[Any]) -> None:
        for entry in self._waiting:
            if entry[0] is d:
                self._waiting.remove(entry)
                return

    def _start(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> defer.Deferred[Any]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            d = self._run(fn, *args, **kwargs)
        except BaseException:
            d = defer.fail()
        d.addBoth(self._done)
        return d

    def _done(self, result: Any) -> Any:
        self.active -= 1
        while self._waiting and self.active < self.concurrency:
            waiter, fn, args, kwargs = self._waiting.popleft()
            self._start(fn, args, kwargs).chainDeferred(waiter)
        return result
