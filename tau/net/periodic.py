"""Periodic maintenance jobs as named services on the registry's reactor (calendar index, file GC).

A run that fails is logged and the next one still comes; a run that did something logs how much.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

if TYPE_CHECKING:
    from tau.registry import Registry


class _StoppingTimer(TimerService):
    """A TimerService that runs ``on_stop`` once stopped (a job giving up its lease)."""

    def __init__(self, on_stop: Callable[[], Coroutine[Any, Any, None]], *args: Any) -> None:
        super().__init__(*args)  # type: ignore[no-untyped-call]
        self.on_stop = on_stop

    def stopService(self) -> defer.Deferred[None]:
        d: defer.Deferred[Any] = defer.maybeDeferred(super().stopService)

        def stopped(_: Any) -> defer.Deferred[None]:
            return defer.ensureDeferred(self.on_stop())

        return d.addCallback(stopped)


def periodic(registry: Registry, name: str, interval: float, job: Callable[[], Awaitable[int]],
             done: str, failed: str,
             on_stop: Callable[[], Coroutine[Any, Any, None]] | None = None) -> TimerService:
    """Run ``job`` every ``interval`` seconds; ``done`` is logged with ``{n}`` when it returns n > 0;
    ``on_stop`` runs when the service stops."""
    log = Logger(namespace=getattr(job, "__module__", None) or __name__)

    async def tick() -> None:
        try:
            count = await job()
            if count:
                log.info(done, n=count)
        except Exception:
            log.failure(failed)

    def run() -> defer.Deferred[None]:
        return defer.ensureDeferred(tick())

    service = TimerService(interval, run) if on_stop is None else _StoppingTimer(on_stop, interval, run)
    service.clock = registry.reactor
    service.setName(name)
    return service
