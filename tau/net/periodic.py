"""Periodic maintenance jobs as named services on the registry's reactor (calendar index, file GC).

A run that fails is logged and the next one still comes; a run that did something logs how much.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

if TYPE_CHECKING:
    from tau.registry import Registry


def periodic(registry: Registry, name: str, interval: float, job: Callable[[], Awaitable[int]],
             done: str, failed: str) -> TimerService:
    """Run ``job`` every ``interval`` seconds; ``done`` is logged with ``{n}`` when it returns n > 0."""
    log = Logger(namespace=getattr(job, "__module__", None) or __name__)

    async def tick() -> None:
        try:
            count = await job()
            if count:
                log.info(done, n=count)
        except Exception:
            log.failure(failed)

    service = TimerService(interval, lambda: defer.ensureDeferred(tick()))
    service.clock = registry.reactor
    service.setName(name)
    return service
