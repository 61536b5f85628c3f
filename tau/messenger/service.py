"""Install TauMessenger into the daemon: REST routes, ``/ws/messages``, presence keep-alive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.internet import TimerService
from twisted.internet import defer

from tau.http.websocket import make_resource
from tau.messenger import api, attachments
from tau.messenger.domain import Messenger
from tau.messenger.hub import Hub
from tau.messenger.presence import TTL
from tau.messenger.ws import MessagesSocket

if TYPE_CHECKING:
    from tau.registry import Registry


def build(registry: Registry) -> tuple[Messenger, Hub, Any]:
    """The messenger, its hub and the ``/ws/messages`` resource (tests mount them on a TauSite)."""
    messenger = registry.messenger
    hub = Hub(registry.bus)
    resource = make_resource(registry, MessagesSocket)
    resource._factory.messenger = messenger
    resource._factory.hub = hub
    return messenger, hub, resource


def install(registry: Registry, host: Any) -> None:
    messenger, hub, resource = build(registry)
    api.register(host.http, messenger)
    attachments.register(registry, host.http, messenger)
    host.http.mount("/ws/messages", resource, auth="none")
    # Redis presence entries expire unless refreshed; in memory this is a no-op
    keepalive = TimerService(TTL / 3, lambda: defer.ensureDeferred(messenger.presence.refresh(hub.live())))
    keepalive.setName("messenger-presence")
    host.add_service(keepalive)
    registry.services["messenger"] = "ok"
