"""Mount TauMail's REST API (``/api/emails``), OpenPGP key upload and WKD on the HTTP core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tau.registry import Registry


def install(registry: Registry, host: Any) -> None:
    if host.http is None:
        return
    from tau.mail import api, pgp_api

    store = registry.mail_store
    api.register(registry, host.http, store)
    pgp_api.register(registry, host.http)
    registry.services["mailapi"] = "ok"
