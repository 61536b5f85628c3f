"""The clock domain code reads the time from, so tests can set it.

Domain code takes a :class:`Clock` (the registry's ``clock``, i.e. the reactor, which is an
``IReactorTime``) or a ``now`` argument instead of calling ``time.time()``; stores read
``txn.now``, the time their transaction started on the database's clock. Tests pass a
``twisted.internet.task.Clock`` (or a ``MemoryReactorClock``) set to whatever time they need.
Durations (timeouts, metrics) keep ``time.monotonic()``: that is not the time of day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall


class Clock(Protocol):
    """The one method of ``IReactorTime`` that reads the time: seconds since the epoch."""

    def seconds(self) -> float: ...


class Scheduler(Clock, Protocol):
    """A ``Clock`` that also sets timers (``IReactorTime.callLater``), for code with a grace period."""

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> IDelayedCall: ...


class WallClock:
    """The real time, for code that runs without a reactor (the CLI, migrations, restore)."""

    def seconds(self) -> float:
        return time.time()  # the one wall-clock read outside the CLI (see tests/test_clock_injected.py)


WALL_CLOCK = WallClock()
