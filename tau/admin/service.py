"""The admin service's ``install``: ``/api/admin/*``, the ``/admin`` dashboard, ``/api/account/2fa``."""

from __future__ import annotations

from typing import Any


def install(registry: Any, host: Any) -> None:
    http = getattr(host, "http", None)
    if http is None:  # no HTTP listener configured: nothing to mount on
        return
    from tau.admin import account, api, dashboard, davlocks, oauth_clients

    api.register(registry, http)
    oauth_clients.register(registry, http)
    davlocks.register(registry, http)
    dashboard.register(registry, http)
    account.register(registry, http)
    if not hasattr(registry, "started_at"):
        registry.started_at = registry.clock.seconds()
    registry.services["admin"] = "ok"
