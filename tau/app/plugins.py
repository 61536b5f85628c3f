"""Protocol services are Twisted plugins providing ``ITauService``, found in ``tau.plugins``.

Each plugin module in ``tau/plugins/`` is tiny and lazy (``LazyService("smtp", "tau.mail.smtp.service")``):
discovery imports only those modules; a service's code loads when it is installed. ``[tau]
disabled_services`` leaves optional ones out (``enabled``); every component a plugin uses comes from
the registry, so leaving one out never leaves another without a part.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twisted.plugin import IPlugin, getPlugins
from zope.interface import Attribute, Interface, implementer

if TYPE_CHECKING:
    from tau.app.host import AppHost
    from tau.config import Config
    from tau.registry import Registry

#: services the others mount on: they cannot be disabled
CORE = frozenset({"http"})


class ITauService(Interface):  # type: ignore[misc]  # zope.interface has no stubs
    name = Attribute("short name: 'http', 'smtp', 'imap', 'dav' ...")
    order = Attribute("install order; lower first (the HTTP core, which gives ``host.http``, first)")

    def install(registry: Registry, host: AppHost) -> None:
        """Add listeners, HTTP mounts and background services to ``host``."""


@implementer(IPlugin, ITauService)
class LazyService:
    def __init__(self, name: str, module: str, order: int = 100, attribute: str = "install") -> None:
        self.name, self.order = name, order
        self._module, self._attribute = module, attribute

    def install(self, registry: Registry, host: AppHost) -> None:
        getattr(importlib.import_module(self._module), self._attribute)(registry, host)

    def __repr__(self) -> str:
        return f"<tau service {self.name} from {self._module}>"


def discover() -> list[Any]:
    """Every ITauService plugin, in install order (name breaks ties)."""
    import tau.plugins

    found = {p.name: p for p in getPlugins(ITauService, tau.plugins)}
    return sorted(found.values(), key=lambda p: (p.order, p.name))


def optional_names() -> list[str]:
    """The services ``[tau] disabled_services`` may name."""
    return [p.name for p in discover() if p.name not in CORE]


def enabled(config: Config) -> list[Any]:
    """The plugins to install: all but ``[tau] disabled_services``; an unknown or core name there
    is a ConfigError (a typo must not leave a service silently running)."""
    plugins = discover()
    disabled = set(config.tau.disabled_services)
    unknown = disabled - {p.name for p in plugins}
    if unknown:
        raise config.error("tau", "disabled_services", f"unknown service {', '.join(sorted(unknown))}"
                                                       f" (known: {', '.join(optional_names())})")
    if disabled & CORE:
        raise config.error("tau", "disabled_services", f"{', '.join(sorted(disabled & CORE))} cannot be disabled:"
                                                       " the other services mount on it")
    return [p for p in plugins if p.name not in disabled]
