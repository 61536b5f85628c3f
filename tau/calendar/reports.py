"""CalDAV REPORTs (RFC 4791 §7.8-7.10): calendar-query, calendar-multiget, free-busy-query.

calendar-query asks ``Calendars.query`` (one index scan for the usual time-range filter) and
returns stored text verbatim unless ``calendar-data`` asks for expansion or a selection, which
is rendered in a worker thread. multiget fetches every href of the collection in one query.
The principal reports (RFC 3744 §9) are answered minimally, for clients that probe them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from tau.calendar import caldata, filters, objects, recurrence
from tau.calendar.caldata import DataRequest
from tau.calendar.davtree import C, CalendarCollection, CalendarObject, Principal
from tau.calendar.filters import FilterError
from tau.calendar.ical import InvalidObject
from tau.calendar.objects import ObjectRow
from tau.dav import paths
from tau.dav.context import MULTISTATUS, DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.propfind import PropRequest, parse_prop_request, propstats
from tau.dav.xml import Multistatus, dav, prop_element, text

NS_C = "urn:ietf:params:xml:ns:caldav"
DATA = C + "calendar-data"
MAX_HREFS = 10_000
MAX_RESPONSE = 64 * 1024 * 1024   # characters of calendar-data one expanded response may carry


def filter_error(exc: FilterError | InvalidObject) -> DavError:
    return DavError(exc.status, exc.message, f'<x:{exc.condition} xmlns:x="{NS_C}"/>')


def _props(root: Any) -> tuple[PropRequest, DataRequest | None]:
    """The report's prop request, with calendar-data split out (it takes parameters)."""
    req = parse_prop_request(root) if any(ch.tag in (dav("prop"), dav("allprop"), dav("propname"))
                                          for ch in root) else PropRequest("prop", [])
    data: DataRequest | None = None
    prop = root.find(dav("prop"))
    if prop is not None:
        elem = prop.find(DATA)
        if elem is not None:
            try:
                data = caldata.parse_request(elem)
            except FilterError as exc:
                raise filter_error(exc)
            req = PropRequest("prop", [n for n in req.names if n != DATA])
    return req, data


def tz_offset(root: Any, calendar_tz: str, at: int) -> int:
    """Seconds east of UTC for floating times (RFC 4791 §9.8 C:timezone, RFC 7809 timezone-id)."""
    from zoneinfo import ZoneInfo

    zone: Any = None
    tzid = root.findtext(C + "timezone-id")
    tz_text = root.findtext(C + "timezone") or calendar_tz
    try:
        if tzid:
            zone = ZoneInfo(tzid.strip())
        elif tz_text:
            cal = caldata.parse_calendar(tz_text)
            found = cal.walk("VTIMEZONE")
            zone = found[0].to_tz() if found else None
    except Exception:
        raise DavError(403, "time zone not understood", f'<x:valid-timezone xmlns:x="{NS_C}"/>')
    if zone is None:
        return 0
    moment = datetime.fromtimestamp(min(max(at, 0), 253402214400), UTC).astimezone(zone)
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


async def _respond(ctx: DavContext, ms: Multistatus, resource: CalendarCollection | None, rows: list[ObjectRow],
                   req: PropRequest, data: DataRequest | None, offset: int) -> None:
    """One response per object: the requested properties plus calendar-data as asked."""
    rendered: dict[int, str] = {}
    if data is not None and not data.verbatim:
        try:
            rendered = await ctx.provider.cals.registry.run_in_thread(_render_all, rows, data, offset)
        except caldata.TooMany as exc:
            raise DavError(403, str(exc), "<D:number-of-matches-within-limits/>")
    base = ctx.resolved.segments if resource is not None else ctx.resolved.segments[:-1]
    key = ctx.resolved.lock_key if resource is not None else ctx.resolved.lock_key[:-1]
    access = resource.access if resource is not None else getattr(ctx.resource, "access", None)
    for row in rows:
        member = CalendarObject(row, access)
        segs = base + [row.name]
        groups = await propstats(ctx, member, segs, key + (row.name,), req) if req.names or req.mode != "prop" \
            else {200: [], 404: []}
        if data is not None:
            body = rendered.get(row.id, row.data or "")
            groups.setdefault(200, []).append(prop_element(DATA, text(body)))
        ms.propstat(ctx.href(segs), groups)


@recurrence.budgeted
def _render_all(rows: list[ObjectRow], data: DataRequest, offset: int) -> dict[int, str]:
    out = {}
    total = 0
    for row in rows:
        try:
            out[row.id] = caldata.render(row.data or "", data, offset)
        except (InvalidObject, ValueError):
            out[row.id] = row.data or ""
        total += len(out[row.id])
        if total > MAX_RESPONSE:
            raise caldata.TooMany("response too large")
    return out


async def calendar_query(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 4791 §7.8."""
    resource = ctx.resource
    req, data = _props(root)
    try:
        cf = filters.parse_filter(root.find(C + "filter"))
    except FilterError as exc:
        raise filter_error(exc)
    depth = (ctx.header("depth") or "1").strip()
    ms = Multistatus()
    if isinstance(resource, CalendarObject):
        cal = ctx.resolved.parent.cal  # type: ignore[union-attr]
        offset = tz_offset(root, cal.timezone, _start(cf, ctx.provider.cals.now()))
        kept = await ctx.provider.cals.registry.run_in_thread(_match_one, resource.row, cf, offset)
        await _respond(ctx, ms, None, [resource.row] if kept else [], req, data, offset)
        return DavResponse(207, ms.render(), MULTISTATUS)
    if not isinstance(resource, CalendarCollection):
        raise DavError(403, "calendar-query needs a calendar", "<D:supported-report/>")
    if depth == "0":
        return DavResponse(207, ms.render(), MULTISTATUS)
    offset = tz_offset(root, resource.cal.timezone, _start(cf, resource.cals.now()))
    rows = await resource.cals.query(resource.cal, cf, offset)
    await _respond(ctx, ms, resource, rows, req, data, offset)
    return DavResponse(207, ms.render(), MULTISTATUS)


def _start(cf: filters.CompFilter | None, now: float) -> int:
    p = filters.plan(cf)
    return p.time_range.start if p.time_range is not None else int(now)


@recurrence.budgeted
def _match_one(row: ObjectRow, cf: filters.CompFilter | None, offset: int) -> bool:
    from tau.calendar.ical import parse_calendar

    try:
        return filters.matches(cf, parse_calendar(row.data or ""), offset)
    except InvalidObject:
        return False


async def calendar_multiget(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 4791 §7.9: hrefs of this calendar in one query; others resolved one by one."""
    resource = ctx.resource
    req, data = _props(root)
    hrefs = [(h.text or "").strip() for h in root.findall(dav("href"))]
    if len(hrefs) > MAX_HREFS:
        raise DavError(403, "too many hrefs", "<D:number-of-matches-within-limits/>")
    ms = Multistatus()
    if isinstance(resource, CalendarObject):
        await _respond(ctx, ms, None, [resource.row], req, data, 0)
        return DavResponse(207, ms.render(), MULTISTATUS)
    if not isinstance(resource, CalendarCollection):
        raise DavError(403, "calendar-multiget needs a calendar", "<D:supported-report/>")
    base = ["dav", *ctx.resolved.segments]
    wanted: dict[str, str] = {}
    for href in hrefs:
        try:
            segs, _ = paths.split_path(urlsplit(href).path)
        except (DavError, ValueError):
            ms.status(href, 404)
            continue
        if segs[:-1] == base and segs:
            wanted[segs[-1]] = href
        else:
            ms.status(href, 404)
    rows = await resource.cals.run("cal_multiget", objects.many, resource.cal.id, list(wanted), readonly=True)
    for name, href in wanted.items():
        if name not in rows:
            ms.status(href, 404)
    await _respond(ctx, ms, resource, [rows[n] for n in wanted if n in rows], req, data, 0)
    return DavResponse(207, ms.render(), MULTISTATUS)


async def free_busy_query(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 4791 §7.10: a VFREEBUSY for the calendar over the time-range (200 text/calendar)."""
    from tau.calendar import freebusy

    resource = ctx.resource
    if not isinstance(resource, CalendarCollection):
        raise DavError(403, "free-busy-query needs a calendar", "<D:supported-report/>")
    elem = root.find(C + "time-range")
    if elem is None:
        raise filter_error(FilterError("valid-filter", "free-busy-query needs a time-range"))
    try:
        tr = filters.parse_time_range(elem)
    except FilterError as exc:
        raise filter_error(exc)
    offset = tz_offset(root, resource.cal.timezone, tr.start)
    periods = await freebusy.busy_periods(resource.cals, [resource.cal], tr.start, tr.end, offset)
    body = freebusy.vfreebusy(periods, tr.start, tr.end, organizer=None, attendee=None, uid=None,
                              now=resource.cals.now())
    return DavResponse(200, body.encode("utf-8"), "text/calendar; charset=utf-8")


async def principal_search(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 3744 §9.4, minimally: the caller's own principal when it matches."""
    terms = [(m.text or "").lower() for m in root.iter(dav("match"))]
    me = ctx.user.address.lower()
    ms = Multistatus()
    if terms and all(t in me for t in terms):
        from tau.calendar.domain import Owner

        principal = Principal(Owner(ctx.user.id, me))
        prop = root.find(dav("prop"))
        req = PropRequest("prop", [p.tag for p in prop] if prop is not None else [])
        segs = ["principals", me]
        ms.propstat(ctx.href(segs, True), await propstats(ctx, principal, segs, tuple(segs), req))
    return DavResponse(207, ms.render(), MULTISTATUS)


async def principal_search_set(ctx: DavContext, root: Any) -> DavResponse:
    body = ('<?xml version="1.0" encoding="utf-8"?>\n<D:principal-search-property-set xmlns:D="DAV:">'
            "<D:principal-search-property><D:prop><D:displayname/></D:prop>"
            "<D:description>Display name</D:description></D:principal-search-property>"
            "</D:principal-search-property-set>")
    return DavResponse(200, body.encode(), "application/xml; charset=utf-8")


async def expand_property(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 3253 §3.8, without expansion: the named properties of the resource itself."""
    resource = ctx.resource
    assert resource is not None
    names = [p.get("name") for p in root.iter(dav("property"))]
    req = PropRequest("prop", ["{" + (p.get("namespace") or "DAV:") + "}" + (p.get("name") or "")
                               for p in root.iter(dav("property")) if p.get("name")] if names else [])
    ms = Multistatus()
    segs = ctx.resolved.segments
    ms.propstat(ctx.href(segs, resource.is_collection),
                await propstats(ctx, resource, segs, ctx.resolved.lock_key, req))
    return DavResponse(207, ms.render(), MULTISTATUS)
