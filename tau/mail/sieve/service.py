"""Install ManageSieve (``[listen] managesieve``) and the Sieve REST routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tau.registry import Registry


def install(registry: Registry, host: Any) -> None:
    from tau.mail.sieve import api, commands
    from tau.mail.sieve.managesieve import ManageSieveFactory

    host.add_listener("managesieve", ManageSieveFactory(registry, commands.TABLE))
    if host.http is not None:
        api.register(registry, host.http)
    registry.services["managesieve"] = "ok"
