"""TauContacts' ``install``: CardDAV at ``/dav/addressbooks/``, ``/.well-known/carddav``
(RFC 6764 §5), REST ``/api/contacts`` and ``/api/addressbooks``, and collected addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.contacts import api
from tau.contacts.collect import Collector
from tau.contacts.davtree import PREFIX, CardBody
from tau.dav.server import XML_METHODS, BoundedBody
from tau.http.router import Response

if TYPE_CHECKING:
    from tau.registry import Registry

DAV_BODY_LIMIT = 16 * 1024 * 1024   # bigger bodies are 413 before they are read; a vCard stops at 2 MiB


def install(registry: Registry, host: Any) -> None:
    contacts, server = registry.contacts, registry.contacts_dav
    http = host.http
    http.mount(PREFIX, server, auth="any", body_limit=DAV_BODY_LIMIT, scope="contacts")
    http.site.add_body_sink(PREFIX + "/", {"PUT"}, lambda request, length: CardBody(request, length), auth="any")
    http.site.add_body_sink(PREFIX + "/", XML_METHODS, lambda request, length: BoundedBody(request, length))
    _well_known(http)
    api.register(registry, http, contacts)
    Collector(registry, contacts).subscribe()
    registry.services["contacts"] = "ok"


def _well_known(http: Any) -> None:
    """RFC 6764 §5: 307 to the address-book tree, whose current-user-principal leads to the home."""

    async def redirect(request: Any) -> Response:
        return Response(b"", 307, "text/plain", {"Location": PREFIX + "/"})

    for method in ("GET", "PROPFIND", "OPTIONS", "REPORT"):
        http.route(method, "/.well-known/carddav", redirect, auth="none")
