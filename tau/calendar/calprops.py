"""Calendar collection properties kept in columns, and the bodies that set them.

PROPPATCH, MKCALENDAR (RFC 4791 §5.3.1) and extended MKCOL (RFC 5689 §3) all end here: the
displayname, description, time zone, colour and order live in the calendar's row, any other
property is stored as a dead property. Both the resource tree (``tau.calendar.davtree``) and the
CalDAV registrations (``tau.calendar.caldav``) use it, so neither has to import the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from defusedxml.ElementTree import fromstring

from tau.calendar import ical
from tau.dav.errors import DavError
from tau.dav.resource import Resource
from tau.dav.xml import dav, element_to_xml

if TYPE_CHECKING:
    from tau.calendar.davtree import Home

ICAL = "{http://apple.com/ns/ical/}"
NS_C = "urn:ietf:params:xml:ns:caldav"

_COLUMNS = {dav("displayname"): "display_name", "{" + NS_C + "}calendar-description": "description",
            "{" + NS_C + "}calendar-timezone": "timezone", ICAL + "calendar-color": "color",
            ICAL + "calendar-order": "sort_order"}


def _text_of(xml: str) -> str:
    try:
        return (fromstring(xml, forbid_dtd=True, forbid_entities=True).text or "").strip()
    except Exception:
        return ""


def column_updates(to_set: dict[str, str], remove: list[str]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Split a PROPPATCH/MKCALENDAR into column updates and dead properties."""
    columns: dict[str, Any] = {}
    dead: dict[str, str] = {}
    for name, xml in to_set.items():
        column = _COLUMNS.get(name)
        if column is None:
            if name not in (c_name("supported-calendar-component-set"), dav("resourcetype")):
                dead[name] = xml
            continue
        value: Any = _text_of(xml)[:64 * 1024]
        if column == "sort_order":
            value = int(value) if value.lstrip("-").isdigit() and len(value) < 12 else None
        elif column == "timezone" and value:
            try:
                ical.parse_calendar(value)
            except ical.InvalidObject:
                raise DavError(403, "calendar-timezone is not a VCALENDAR", "<x:valid-calendar-data xmlns:x="
                               f'"{NS_C}"/>')
        columns[column] = value
    gone = []
    for name in remove:
        column = _COLUMNS.get(name)
        if column is None:
            gone.append(name)
        else:
            columns[column] = None if column == "sort_order" else ""
    return columns, dead, gone


def c_name(local: str) -> str:
    return "{" + NS_C + "}" + local


def components_of(props: dict[str, str]) -> tuple[str, ...]:
    xml = props.get(c_name("supported-calendar-component-set"))
    if not xml:
        return ()
    try:
        root = fromstring(xml, forbid_dtd=True, forbid_entities=True)
    except Exception:
        raise DavError(400, "malformed supported-calendar-component-set")
    names = tuple(dict.fromkeys((e.get("name") or "").upper() for e in root if e.tag == c_name("comp")))
    if not names or any(n not in ical.COMPONENTS for n in names):
        raise DavError(403, "unsupported component set", f'<x:supported-calendar-component xmlns:x="{NS_C}"/>')
    return names


def set_props(root: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for instruction in root:
        if instruction.tag != dav("set"):
            continue
        for prop in instruction:
            if prop.tag == dav("prop"):
                for elem in prop:
                    out[elem.tag] = element_to_xml(elem)
    return out


async def mkcol_calendar(home: Home, name: str, body: Any) -> Resource:
    """RFC 5689 §3: ``DAV:mkcol`` whose resourcetype includes ``C:calendar``."""
    if body.tag != dav("mkcol"):
        raise DavError(415, "MKCOL body not understood")
    props = set_props(body)
    rtype = props.pop(dav("resourcetype"), "")
    if "calendar" not in rtype or NS_C not in rtype:
        raise DavError(403, "only calendars can be created here", "<D:valid-resourcetype/>")
    return await home.make_calendar(name, props)
