"""The event bus: things that happened, published after commit, consumed by any service.

In-process on one node (``LocalBus``); the Redis implementation for several nodes keeps the same
interface. Events are (topic, JSON-able dict); subscribers are plain callables run on the reactor.
"""

from tau.bus.local import EventBus, LocalBus, Subscription

__all__ = ["EventBus", "LocalBus", "Subscription"]
