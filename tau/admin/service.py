"""The admin service's ``install``: ``/api/admin/*``, the ``/admin`` dashboard, ``/api/account/2fa``,
``/api/invite`` and the ``/invite`` page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tau.registry import Registry


def install(registry: Registry, host: Any) -> None:
    http = getattr(host, "http", None)
    if http is None:  # no HTTP listener configured: nothing to mount on
        return
    from tau.admin import account, api, dashboard, davlocks, invites, oauth_clients

    api.register(registry, http)
    oauth_clients.register(registry, http)
    davlocks.register(registry, http)
    dashboard.register(registry, http)
    account.register(registry, http)
    invites.register(registry, http)
    registry.started_at  # noqa: B018 - fixed now: the admin page reports uptime from it
    registry.services["admin"] = "ok"
