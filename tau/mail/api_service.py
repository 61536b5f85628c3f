"""Mount TauMail's REST API (``/api/emails``), OpenPGP key upload and WKD, and S/MIME
(``/api/keys/smime``, plus collecting correspondents' certificates from delivered mail)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tau.registry import Registry


def install(registry: Registry, host: Any) -> None:
    from tau.mail import smime_inbound

    smime_inbound.Collector(registry).subscribe()
    if host.http is None:
        return
    from tau.mail import api, pgp_api, smime_api

    store = registry.mail_store
    api.register(registry, host.http, store)
    pgp_api.register(registry, host.http)
    smime_api.register(registry, host.http)
    registry.services["mailapi"] = "ok"
