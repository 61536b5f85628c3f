"""The registry's machinery: ``component`` (a cached, cycle-checked builder) and ``RegistryBase``.

Synapse's ``HomeServer`` with ``cache_in_self`` is the model: each component is one typed getter
whose builder names the components it needs, built on first use and kept. Nothing is added at
install time; tests may pre-seed a component with ``provide()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet import defer, threads

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from tau.config import Config
    from tau.registry import Registry

T = TypeVar("T")
R = TypeVar("R", bound="RegistryBase")


class RegistryCycle(Exception):
    pass


def component(builder: Callable[[R], T]) -> T:
    """A lazily built, cached component; building it twice at once is a cycle."""
    name = builder.__name__

    @functools.wraps(builder)
    def get(self: R) -> T:
        if name in self._built:
            return self._built[name]  # type: ignore[no-any-return]
        if name in self._building:
            raise RegistryCycle(" -> ".join([*self._building, name]))
        self._building.append(name)
        try:
            value = builder(self)
        finally:
            self._building.pop()
        self._built[name] = value
        return value

    return property(get)  # type: ignore[return-value]


class RegistryBase:
    """Config, reactor, thread helpers and the component cache; the floors build on it."""

    def __init__(self, config: Config, reactor: Any = None,
                 run_in_thread: Callable[..., defer.Deferred[Any]] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor: Any = reactor
        self._built: dict[str, Any] = {}
        self._building: list[str] = []
        self._run_in_thread = run_in_thread
        #: name → callable returning a Deferred/str status; filled by services for /api/health
        self.health_checks: dict[str, Callable[[], Any]] = {}
        #: name of each installed service → "ok"; shown in /api/health
        self.services: dict[str, str] = {}

    @property
    def whole(self) -> Registry:
        """This object as the ``Registry`` the domain classes take: a floor's builders hand it on
        (the floors are bases of ``Registry``, and only ``Registry`` is ever instantiated)."""
        return cast("Registry", self)

    def provide(self, name: str, value: Any) -> None:
        """Pre-seed a component: tests only (a fake, a synchronous database, ``None`` for an
        optional one). Production code takes every component from its getter."""
        self._built[name] = value

    def is_built(self, name: str) -> bool:
        """Whether a component was already built (SIGHUP reloads only what exists)."""
        return name in self._built

    def serving(self, service: str) -> bool:
        """Whether the plugin ``service`` is installed in this process. Asked at use time (a request,
        a timer), never while plugins install, so the plugins' order does not matter."""
        return service in self.services

    @property
    def clock(self) -> IReactorTime:
        return self.reactor  # type: ignore[no-any-return]

    def run_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """Blocking work (argon2, big file I/O) off the reactor thread."""
        if self._run_in_thread is not None:
            return self._run_in_thread(fn, *args, **kwargs)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args, **kwargs)
