"""CalDAV on the protocol-only WebDAV core: properties, MKCALENDAR, extended MKCOL (RFC 4791, 5689, 6638).

Like Xandikos' ``caldav.py``, this module only registers: live properties on the server's
``PropertyRegistry`` (principal and home discovery, calendar metadata, ``getctag``,
privileges), the CalDAV reports (``tau.calendar.reports``), and the MKCALENDAR and POST
(scheduling outbox) methods. Writable calendar properties (displayname, description, colour,
order, time zone) live in columns; any other property set by a client is a dead property.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from tau.calendar import freebusy, ical, reports
from tau.calendar.calprops import ICAL, NS_C, c_name, column_updates, components_of, mkcol_calendar, set_props
from tau.calendar.davtree import C, CalendarCollection, CalendarObject, Home, Principal
from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.properties import LiveProperty, PropContext, PropertyRegistry
from tau.dav.resource import Resource
from tau.dav.xml import dav

if TYPE_CHECKING:
    from tau.dav.server import DavServer

CS = "{http://calendarserver.org/ns/}"


def _href(path: str) -> str:
    return f"<D:href>{escape(path)}</D:href>"


def _me(p: PropContext) -> str:
    return p.user.address.lower()


# -- principal properties (RFC 3744 §4, RFC 4791 §6.2, RFC 6638 §2) ------------------------------

def _principal_url(r: Resource, p: PropContext) -> str | None:
    return _href(f"/dav/principals/{r.user.address}/") if isinstance(r, Principal) else None


def _home_set(r: Resource, p: PropContext) -> str | None:
    return _href(f"/dav/calendars/{r.user.address}/") if isinstance(r, Principal) else None


def _address_set(r: Resource, p: PropContext) -> str | None:
    if not isinstance(r, Principal):
        return None
    return _href(f"mailto:{r.user.address}") + _href(f"/dav/principals/{r.user.address}/")


def _user_type(r: Resource, p: PropContext) -> str | None:
    return "INDIVIDUAL" if isinstance(r, Principal) else None


def _inbox_url(r: Resource, p: PropContext) -> str | None:
    return _href(f"/dav/calendars/{r.user.address}/inbox/") if isinstance(r, Principal) else None


def _outbox_url(r: Resource, p: PropContext) -> str | None:
    return _href(f"/dav/calendars/{r.user.address}/outbox/") if isinstance(r, Principal) else None


def _principal_collections(r: Resource, p: PropContext) -> str:
    return _href("/dav/principals/")


def _owner(r: Resource, p: PropContext) -> str | None:
    if isinstance(r, CalendarCollection):
        return _href(f"/dav/principals/{r.cal.owner}/")
    if isinstance(r, (Home, Principal)):
        return _href(f"/dav/principals/{_me(p)}/")
    return None


_READ = ["read", "read-current-user-privilege-set"]
_WRITE = ["write", "write-properties", "write-content", "bind", "unbind"]


def _privileges(r: Resource, p: PropContext) -> str:
    """RFC 3744 §5.4: clients show a shared read-only calendar as read-only from this."""
    names = _READ + (_WRITE if r.writable else [])
    out = "".join(f"<D:privilege><D:{n}/></D:privilege>" for n in names)
    if isinstance(r, CalendarCollection) and r.cal.kind == "inbox":
        out += f'<D:privilege><x:schedule-deliver xmlns:x="{NS_C}"/></D:privilege>'
    return out


# -- calendar properties (RFC 4791 §5.2) ---------------------------------------------------------

def _cal(r: Resource) -> Any:
    return r.cal if isinstance(r, CalendarCollection) else None


def _description(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    return escape(cal.description) if cal is not None and cal.description else None


def _timezone(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    return escape(cal.timezone) if cal is not None and cal.timezone else None


def _color(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    return escape(cal.color) if cal is not None and cal.color else None


def _order(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    return str(cal.sort_order) if cal is not None and cal.sort_order is not None else None


def _components(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    if cal is None:
        return None
    return "".join(f'<x:comp xmlns:x="{NS_C}" name="{escape(c)}"/>' for c in cal.components)


def _calendar_data_types(r: Resource, p: PropContext) -> str | None:
    if _cal(r) is None:
        return None
    return f'<x:calendar-data xmlns:x="{NS_C}" content-type="text/calendar" version="2.0"/>'


def _max_size(r: Resource, p: PropContext) -> str | None:
    return str(ical.MAX_RESOURCE_SIZE) if _cal(r) is not None else None


def _ctag(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    return escape(f"{cal.id}-{cal.sync_seq}") if cal is not None else None


def _default_calendar(r: Resource, p: PropContext) -> str | None:
    cal = _cal(r)
    if cal is None or cal.kind != "inbox":
        return None
    return _href(f"/dav/calendars/{cal.owner}/calendar/")


def _calendar_data(r: Resource, p: PropContext) -> str | None:
    if isinstance(r, CalendarObject) and r.row.data is not None:
        return escape(r.row.data)
    return None


def _transp(r: Resource, p: PropContext) -> str | None:
    return f'<x:opaque xmlns:x="{NS_C}"/>' if _cal(r) is not None and r.cal.kind == "calendar" else None


def properties(registry: PropertyRegistry) -> None:
    d, c = "{DAV:}", "{" + NS_C + "}"
    for prop in [
        LiveProperty(d + "principal-URL", _principal_url),
        LiveProperty(d + "principal-collection-set", _principal_collections, allprop=False),
        LiveProperty(d + "owner", _owner, allprop=False),
        LiveProperty(d + "current-user-privilege-set", _privileges, allprop=False),
        LiveProperty(c + "calendar-home-set", _home_set),
        LiveProperty(c + "calendar-user-address-set", _address_set),
        LiveProperty(c + "calendar-user-type", _user_type),
        LiveProperty(c + "schedule-inbox-URL", _inbox_url),
        LiveProperty(c + "schedule-outbox-URL", _outbox_url),
        LiveProperty(c + "schedule-default-calendar-URL", _default_calendar),
        LiveProperty(c + "schedule-calendar-transp", _transp, allprop=False),
        LiveProperty(c + "calendar-description", _description, protected=False),
        LiveProperty(c + "calendar-timezone", _timezone, protected=False),
        LiveProperty(c + "supported-calendar-component-set", _components),
        LiveProperty(c + "supported-calendar-data", _calendar_data_types),
        LiveProperty(c + "max-resource-size", _max_size),
        LiveProperty(c + "calendar-data", _calendar_data, allprop=False),
        LiveProperty(CS + "getctag", _ctag),
        LiveProperty(ICAL + "calendar-color", _color, protected=False),
        LiveProperty(ICAL + "calendar-order", _order, protected=False),
    ]:
        registry.register(prop)


# -- MKCALENDAR ---------------------------------------------------------------------------------

async def handle_mkcalendar(ctx: DavContext) -> DavResponse:
    """MKCALENDAR (RFC 4791 §5.3.1)."""
    resolved = ctx.resolved
    if resolved.resource is not None:
        raise DavError(405, "a resource exists at this URL", "<D:resource-must-be-null/>",
                       headers={"Allow": ctx.server.allow()})
    if not isinstance(resolved.parent, Home) or len(resolved.segments) != 3:
        raise DavError(403, "calendars are created in your calendar home",
                       f'<x:calendar-collection-location-ok xmlns:x="{NS_C}"/>')
    root = ctx.xml_body()
    props: dict[str, str] = {}
    if root is not None:
        if root.tag != c_name("mkcalendar"):
            raise DavError(400, "expected C:mkcalendar")
        props = set_props(root)
    ctx.check_write(resolved.lock_key, member_of=resolved.lock_key[:-1])
    await resolved.parent.make_calendar(resolved.segments[-1], props)
    return DavResponse(201, b"", None, {"Location": ctx.href(resolved.segments, True), "Cache-Control": "no-cache"})


def register(server: DavServer) -> None:
    """Everything CalDAV adds to a DavServer."""
    properties(server.properties)
    server.add_method("MKCALENDAR", handle_mkcalendar)
    server.add_method("POST", freebusy.handle_post)
    server.reports.register(c_name("calendar-query"), reports.calendar_query)
    server.reports.register(c_name("calendar-multiget"), reports.calendar_multiget)
    server.reports.register(c_name("free-busy-query"), reports.free_busy_query)
    server.reports.register(dav("principal-property-search"), reports.principal_search)
    server.reports.register(dav("principal-search-property-set"), reports.principal_search_set)
    server.reports.register(dav("expand-property"), reports.expand_property)


__all__ = ["C", "CS", "ICAL", "column_updates", "components_of", "mkcol_calendar", "register"]
