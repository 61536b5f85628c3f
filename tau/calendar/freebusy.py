"""Free-busy: the CALDAV:free-busy-query report (RFC 4791 §7.10) and scheduling outbox POST
(RFC 6638 §5: free-busy lookups of local users).

Busy time comes from the instance index (``busy`` column: BUSY, BUSY-TENTATIVE or FREE, from
TRANSP and STATUS), so a lookup does not parse events, except objects whose index stops before
the window (rules without end), which are expanded on demand and bounded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from tau.calendar import ical, objects, recurrence
from tau.calendar.davtree import Fixed
from tau.calendar.store import CalendarRow
from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError

NS_C = "urn:ietf:params:xml:ns:caldav"
MAX_WINDOW = 5 * 366 * 86400


def _txn(txn: Any, ids: list[int], start: int, end: int) -> tuple[list[objects.Hit], list[objects.ObjectRow]]:
    hits: list[objects.Hit] = []
    extra: list[objects.ObjectRow] = []
    for cal_id in ids:
        hits += objects.candidates(txn, cal_id, start, end, "VEVENT")
        extra += objects.unindexed(txn, cal_id, end, "VEVENT")
    return hits, extra


@recurrence.budgeted
def _expand_extra(rows: list[objects.ObjectRow], start: int, end: int, offset: int) -> list[tuple[int, int, str]]:
    out = []
    for row in rows:
        try:
            cal = ical.parse_calendar(row.data or "")
        except ical.InvalidObject:
            continue
        timed = [c for c in cal.subcomponents if c.name == "VEVENT"]
        since = max(start, (row.indexed_until or start) - 86400)
        hits, _ = recurrence.between(timed, since, end, offset)
        for inst in hits:
            if inst.start >= (row.indexed_until or 0):
                shift = offset if inst.floating else 0
                out.append((inst.start - shift, inst.end - shift, inst.busy))
    return out


async def busy_periods(cals: Any, calendars: Sequence[CalendarRow], start: int, end: int,
                       offset: int = 0) -> list[tuple[int, int, str]]:
    """Merged (start, end, FBTYPE) periods, clipped to the window."""
    if end - start > MAX_WINDOW:
        raise DavError(403, "free-busy window too long", f'<x:valid-filter xmlns:x="{NS_C}"/>')
    ids = [c.id for c in calendars if c.kind == "calendar"]
    hits, extra = await cals.run("cal_freebusy", _txn, ids, start, end, readonly=True)
    periods = []
    for h in hits:
        shift = offset if h.floating else 0
        if h.busy and h.busy != "FREE" and h.start - shift < end and h.end - shift > start:
            periods.append((h.start - shift, h.end - shift, h.busy))
    if extra:
        periods += [p for p in await cals.registry.run_in_thread(_expand_extra, extra, start, end, offset)
                    if p[2] != "FREE"]
    return merge([(max(s, start), min(e, end), kind) for s, e, kind in periods if s < end and e > start])


def merge(periods: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for kind in ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE"):
        current: list[int] | None = None
        for s, e, _ in sorted(p for p in periods if p[2] == kind):
            if current is not None and s <= current[1]:
                current[1] = max(current[1], e)
            else:
                if current is not None:
                    out.append((current[0], current[1], kind))
                current = [s, e]
        if current is not None:
            out.append((current[0], current[1], kind))
    return sorted(out)


def _utc(epoch: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch)).strftime("%Y%m%dT%H%M%SZ")


def vfreebusy(periods: list[tuple[int, int, str]], start: int, end: int, organizer: str | None,
              attendee: str | None, uid: str | None, method: str | None = None, *, now: float) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tau//TauCalendar//EN"]
    if method:
        lines.append(f"METHOD:{method}")
    lines += ["BEGIN:VFREEBUSY", f"DTSTAMP:{_utc(int(now))}",
              f"DTSTART:{_utc(start)}", f"DTEND:{_utc(end)}"]
    if uid:
        lines.append(f"UID:{uid}")
    if organizer:
        lines.append(f"ORGANIZER:{organizer}")
    if attendee:
        lines.append(f"ATTENDEE:{attendee}")
    for s, e, kind in periods:
        lines.append(f"FREEBUSY;FBTYPE={kind}:{_utc(s)}/{_utc(e)}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def _address(value: Any) -> str:
    return str(value).strip().lower().removeprefix("mailto:")


async def handle_post(ctx: DavContext) -> DavResponse:
    """RFC 6638 §5: POST a VFREEBUSY request to your own outbox; one response per attendee."""
    from tau.calendar.domain import Owner

    resource = ctx.resource
    me = ctx.user.address.lower()
    if not isinstance(resource, Fixed) or resource.name != "outbox" or ctx.resolved.segments[1].lower() != me:
        raise DavError(405, "POST is accepted only by your scheduling outbox", headers={"Allow": ctx.server.allow()})
    try:
        cal = ical.parse_calendar(ctx.read_body())
    except ical.InvalidObject as exc:
        raise DavError(400, exc.message, f'<x:valid-calendar-data xmlns:x="{NS_C}"/>')
    requests = cal.walk("VFREEBUSY")
    if str(cal.get("METHOD", "")).upper() != "REQUEST" or len(requests) != 1:
        raise DavError(403, "only VFREEBUSY requests are scheduled through POST",
                       f'<x:valid-scheduling-message xmlns:x="{NS_C}"/>')
    fb = requests[0]
    if _address(fb.get("ORGANIZER", "")) != me:
        raise DavError(403, "you are not the organizer", f'<x:organizer-allowed xmlns:x="{NS_C}"/>')
    try:
        start, end = recurrence.epoch(fb["DTSTART"].dt), recurrence.epoch(fb["DTEND"].dt)
    except (KeyError, AttributeError):
        raise DavError(400, "VFREEBUSY needs DTSTART and DTEND", f'<x:valid-calendar-data xmlns:x="{NS_C}"/>')
    attendees = fb.get("ATTENDEE", [])
    attendees = attendees if isinstance(attendees, list) else [attendees]
    cals = ctx.provider.cals
    parts = []
    for att in attendees[:100]:
        address = _address(att)
        owner = await cals.owner(address)
        status, data = "3.7;Invalid calendar user", ""
        if owner is not None and end > start:
            calendars = [a.calendar for a in await cals.home(Owner(owner.id, owner.address)) if a.owned]
            periods = await busy_periods(cals, calendars, start, end)
            data = vfreebusy(periods, start, end, f"mailto:{me}", f"mailto:{address}",
                             str(fb.get("UID", uuid.uuid4())), "REPLY", now=cals.now())
            status = "2.0;Success"
        parts.append(f"<C:response><C:recipient><D:href>mailto:{escape(address)}</D:href></C:recipient>"
                     f"<C:request-status>{status}</C:request-status>"
                     + (f"<C:calendar-data>{escape(data)}</C:calendar-data>" if data else "") + "</C:response>")
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<C:schedule-response xmlns:D="DAV:" xmlns:C="{NS_C}">'
            + "".join(parts) + "</C:schedule-response>")
    return DavResponse(200, body.encode("utf-8"), "application/xml; charset=utf-8")
