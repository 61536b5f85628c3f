"""The daemon's real database pool in an in-process test: worker threads run the SQL at the same
time, and the test thread plays the reactor (:meth:`PumpedReactor.pump`) until what it waits for
has happened. For tests of concurrency (time budgets, cancellation, fair shares) that the
synchronous :class:`tests.support.harness.ImmediateDatabase` cannot show."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.testing import MemoryReactorClock

from tau.storage.database import Database

if TYPE_CHECKING:
    from tau.registry import Registry


class PumpedReactor(MemoryReactorClock):
    """``callFromThread`` queues the call; :meth:`pump` runs queued calls on the test thread."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = queue.Queue()

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._calls.put((f, args, kwargs))

    def pump(self, until: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Run thread results as they arrive until ``until()`` holds; False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                f, args, kwargs = self._calls.get(timeout=min(left, 0.02))
            except queue.Empty:
                continue
            f(*args, **kwargs)
        return True

    def settle(self, timeout: float = 10.0) -> None:
        """Run whatever the workers deliver for a short while (let cancelled work drain)."""
        self.pump(lambda: False, timeout)


def pooled_database(registry: Registry, statement_timeout: float = 0.0, user_share: int = 0,
                    observed: list[tuple[str, float, bool]] | None = None) -> tuple[Database, PumpedReactor]:
    """The daemon's Database over ``registry.engine`` with real worker threads, started; the
    caller installs it (``registry.provide("db", db)``) and closes it. Finished transactions are
    appended to ``observed`` as (name, seconds, ok)."""
    reactor = PumpedReactor()
    observe = (lambda name, seconds, ok: observed.append((name, seconds, ok))) if observed is not None else None
    db = Database(registry.engine, reactor, observe=observe, statement_timeout=statement_timeout,
                  user_share=user_share, clock=registry.clock, keyring=registry.keyring)
    db.start()
    return db, reactor
