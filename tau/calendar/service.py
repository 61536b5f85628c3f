"""TauCalendar's ``install``: CalDAV at ``/dav/`` (principals, calendar homes; TauCloud keeps
``/dav/files/``), the ``/.well-known/caldav`` redirect (RFC 6764 §5; TauContacts serves ``/.well-known/carddav``),
REST ``/api/events`` and ``/api/calendars``, scheduling, and iMIP processing of delivered mail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.calendar import api
from tau.calendar.davtree import CalendarBody
from tau.dav.server import XML_METHODS, BoundedBody
from tau.http.router import Response

if TYPE_CHECKING:
    from tau.registry import Registry

DAV_PREFIX = "/dav"
DAV_BODY_LIMIT = 16 * 1024 * 1024   # bigger bodies are 413 before they are read; calendar objects stop at 1 MiB


def install(registry: Registry, host: Any) -> None:
    cals, server = registry.calendars, registry.calendar_dav
    http = host.http
    http.mount(DAV_PREFIX, server, auth="any", body_limit=DAV_BODY_LIMIT, scope="calendar")
    # authenticated when the headers arrive: a refused PUT is answered 401 before its body is read
    http.site.add_body_sink(DAV_PREFIX + "/", {"PUT"}, lambda request, length: CalendarBody(request, length),
                            auth="any")
    http.site.add_body_sink(DAV_PREFIX + "/", XML_METHODS, lambda request, length: BoundedBody(request, length))
    _well_known(http)
    api.register(registry, http, cals)
    from tau.calendar.imip import ImipReceiver

    ImipReceiver(registry, cals).subscribe()
    from tau.calendar import maintenance

    host.add_service(maintenance.service(registry))
    registry.services["calendar"] = "ok"


def _well_known(http: Any) -> None:
    """RFC 6764 §5: a client given only a host name finds the DAV root here. 307 (one of the
    codes §5 names) so clients repeat the PROPFIND with its body; after a 301 many drop it."""

    async def redirect(request: Any) -> Response:
        return Response(b"", 307, "text/plain", {"Location": DAV_PREFIX + "/"})

    for method in ("GET", "PROPFIND", "OPTIONS", "REPORT"):
        http.route(method, "/.well-known/caldav", redirect, auth="none")
