"""What a service plugin installs into: listeners, HTTP mounts, background services."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service

from tau.app.connlimit import FAMILIES, CappedFactory, ConnectionCaps
from tau.config import LISTENERS
from tau.net.endpoints import is_tau_tls, listen_endpoint, wrap_factory

if TYPE_CHECKING:
    from tau.registry import Registry


class AppHost:
    def __init__(self, registry: Registry, background: MultiService, listening: MultiService) -> None:
        self.registry = registry
        self.background = background
        self.listening = listening
        self.listeners: dict[str, StreamServerEndpointService] = {}
        #: set by the HTTP core: ``host.http.route(...)`` / ``host.http.mount(...)``
        self.http: Any = None
        #: called at shutdown once the listeners stopped accepting (see ``on_drain``)
        self.drains: list[Callable[[float], Any]] = []
        self._caps: ConnectionCaps | None = None

    @property
    def caps(self) -> ConnectionCaps:
        """The connection caps every listener shares (``[limits]``, see tau.app.connlimit)."""
        if self._caps is None:
            self._caps = ConnectionCaps.from_config(self.registry.config, self.registry.metrics)
        return self._caps

    def listener_configured(self, key: str) -> bool:
        return bool(self.registry.config.listen.endpoint(key))

    def add_listener(self, key: str, factory: Any) -> StreamServerEndpointService | None:
        """Listen on ``[listen] key`` if it is set; ``ssl:`` strings get tau's reloadable TLS.

        Every listener is capped per client address and in total (``CappedFactory``, outermost, so
        a connection's slot is given back however its protocol changes; refusals go through TLS)."""
        if key not in LISTENERS:
            raise KeyError(key)
        desc = self.registry.config.listen.endpoint(key)
        if not desc:
            return None
        tls = self.registry.tls if is_tau_tls(desc) else None
        endpoint = listen_endpoint(self.registry.reactor, desc)
        capped = CappedFactory(wrap_factory(desc, factory, tls), self.caps, FAMILIES[key], self.registry.reactor)
        service = StreamServerEndpointService(endpoint, capped)
        service.setName(f"listen-{key}")
        # an address in use should fail the start loudly rather than being logged and ignored
        service._raiseSynchronously = True
        service.setServiceParent(self.listening)
        self.listeners[key] = service
        return service

    def on_drain(self, drain: Callable[[float], Any]) -> None:
        """At shutdown, after the listeners stopped accepting and before background services and
        the database stop, ``drain(timeout)`` is awaited: let work in flight finish (bounded)."""
        self.drains.append(drain)

    def add_service(self, service: Service) -> None:
        """Background work; started after the database, stopped after the listeners."""
        service.setServiceParent(self.background)
