"""In-process event bus."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger

log = Logger()
Handler = Callable[[str, dict[str, Any]], Any]


class Subscription:
    def __init__(self, bus: "LocalBus", topic: str, handler: Handler) -> None:
        self._bus, self.topic, self.handler = bus, topic, handler

    def cancel(self) -> None:
        self._bus._remove(self)


class EventBus(Protocol):
    def publish(self, topic: str, event: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str, handler: Handler) -> Subscription: ...


class LocalBus:
    """Topics are exact strings; a subscriber to ``prefix.*`` sees every ``prefix.`` topic."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Subscription]] = {}

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        targets = list(self._subs.get(topic, ()))
        head = topic.split(".", 1)[0]
        targets += self._subs.get(head + ".*", ())
        for sub in targets:
            try:
                sub.handler(topic, event)
            except Exception:
                log.failure("event handler for {topic} failed", topic=topic)

    def subscribe(self, topic: str, handler: Handler) -> Subscription:
        sub = Subscription(self, topic, handler)
        self._subs.setdefault(topic, []).append(sub)
        return sub

    def subscribe_local(self, topic: str, handler: Handler) -> Subscription:
        """Events published on this node only; on one node that is every event (see RedisBus)."""
        return self.subscribe(topic, handler)

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
