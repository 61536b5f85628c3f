"""Protocol services are Twisted plugins providing ``ITauService``, found in ``tau.plugins``.

Each plugin module in ``tau/plugins/`` is tiny and lazy (``LazyService("smtp", "tau.mail.smtp.service")``):
discovery imports only those modules; a service's code loads when it is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from twisted.plugin import IPlugin, getPlugins
from zope.interface import Attribute, Interface, implementer


class ITauService(Interface):
    name = Attribute("short name: 'http', 'smtp', 'imap', 'dav' ...")
    order = Attribute("install order; lower first (the HTTP core before what mounts on it)")

    def install(registry: Any, host: Any) -> None:
        """Add listeners, HTTP mounts and background services to ``host``."""


@implementer(IPlugin, ITauService)
class LazyService:
    def __init__(self, name: str, module: str, order: int = 100, attribute: str = "install") -> None:
        self.name, self.order = name, order
        self._module, self._attribute = module, attribute

    def install(self, registry: Any, host: Any) -> None:
        getattr(importlib.import_module(self._module), self._attribute)(registry, host)

    def __repr__(self) -> str:
        return f"<tau service {self.name} from {self._module}>"


def discover() -> list[Any]:
    """Every ITauService plugin, in install order (name breaks ties)."""
    import tau.plugins

    found = {p.name: p for p in getPlugins(ITauService, tau.plugins)}
    return sorted(found.values(), key=lambda p: (p.order, p.name))
