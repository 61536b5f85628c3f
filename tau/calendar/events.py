"""Plain event fields (REST ``/api/events``, INTERFACE.md) ↔ iCalendar (RFC 5545).

``build`` makes a VCALENDAR with one VEVENT (or VTODO for ``type: todo``) from
``{summary, start, end, location?, description?, rrule?, timezone?, attendees?, conference?}``;
times are RFC 3339 (``2024-05-01T10:00:00Z``, with an offset, or local with ``timezone`` an
IANA name) or a date (``2024-05-01``: all day). ``patch`` applies the same fields to the master
of a stored object; ``answer`` sets the caller's PARTSTAT (an invitation accepted or declined);
``item`` renders one instance for a list, with ``organizer`` and ``attendees`` when scheduled.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tau.calendar import itip, recurrence
from tau.calendar.recurrence import Instance

if TYPE_CHECKING:
    from icalendar import Calendar, vRecur

PRODID = "-//tau//TauCalendar//EN"
TEXT_LIMIT = 10_000


class FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def parse_time(value: Any, field: str, zone: str | None = None) -> date | datetime:
    """RFC 3339 date-time (UTC, offset, or local in ``zone``) or a plain date."""
    if not isinstance(value, str) or not value or len(value) > 40:
        raise FieldError(field, f"{field} must be an RFC 3339 date-time or a date")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        dt = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(field, f"{field} is not a valid RFC 3339 date-time: {value!r}")
    if dt.year < 1900 or dt.year > 2999:
        raise FieldError(field, f"{field} is out of range")
    if dt.tzinfo is None:
        if not zone:
            raise FieldError(field, f"{field} needs a UTC offset (or a timezone field)")
        return dt.replace(tzinfo=_zone(zone))
    if zone:
        return dt.astimezone(_zone(zone))
    return dt.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: "Europe/" is a folder
        raise FieldError("timezone", f"unknown time zone {name!r}")


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > TEXT_LIMIT:
        raise FieldError(name, f"{name} must be a string of at most {TEXT_LIMIT} characters")
    return value


def _rrule(value: Any) -> vRecur:
    from icalendar import vRecur  # loaded on first use: icalendar is large
    if not isinstance(value, str) or not value or len(value) > 500:
        raise FieldError("rrule", "rrule must be an RRULE value like FREQ=WEEKLY;COUNT=10")
    text = value.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    try:
        rule = vRecur.from_ical(text)
    except ValueError:
        raise FieldError("rrule", f"invalid rrule {value!r}")
    if "FREQ" not in rule:
        raise FieldError("rrule", "rrule needs FREQ")
    return rule


def _address(value: Any) -> str:
    if not isinstance(value, str) or "@" not in value or len(value) > 254 or any(c in value for c in "\r\n<>,;"):
        raise FieldError("attendees", f"not an address: {value!r}")
    return value.strip().lower().removeprefix("mailto:")


def stamp(now: float) -> datetime:
    """A DTSTAMP/COMPLETED value: ``now`` in UTC, whole seconds."""
    return datetime.fromtimestamp(int(now), UTC)


def build(fields: dict[str, Any], organizer: str, hostname: str, now: float) -> tuple[str, str]:
    """(uid, iCalendar text) for a new event or to-do."""
    from icalendar import Calendar, Event, Todo, vCalAddress  # loaded on first use: icalendar is large
    todo = fields.get("type") == "todo"
    if fields.get("type") not in (None, "event", "todo"):
        raise FieldError("type", "type is event or todo")
    summary = _text(fields, "summary")
    if not summary:
        raise FieldError("summary", "summary is required")
    comp = Todo() if todo else Event()
    uid = f"{uuid.uuid4()}@{hostname}"
    comp.add("UID", uid)
    comp.add("DTSTAMP", stamp(now))
    comp.add("SUMMARY", summary)
    _apply(comp, fields, todo, True, now)
    attendees = fields.get("attendees") or []
    if not isinstance(attendees, list) or len(attendees) > 200:
        raise FieldError("attendees", "attendees must be a list of addresses")
    if attendees:
        org = vCalAddress(f"mailto:{organizer}")
        comp.add("ORGANIZER", org)
        me = vCalAddress(f"mailto:{organizer}")
        me.params["PARTSTAT"] = "ACCEPTED"
        me.params["ROLE"] = "CHAIR"
        comp.add("ATTENDEE", me)
        for address in dict.fromkeys(_address(a) for a in attendees):
            if address == organizer:
                continue
            att = vCalAddress(f"mailto:{address}")
            att.params.update({"PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE", "ROLE": "REQ-PARTICIPANT"})
            comp.add("ATTENDEE", att)
    cal = Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", PRODID)
    cal.add_component(comp)
    _timezones(cal)
    return uid, cal.to_ical().decode("utf-8")


def _timezones(cal: Calendar) -> None:
    try:
        cal.add_missing_timezones()
    except Exception:  # a VTIMEZONE is a courtesy for clients; the TZID is an IANA name anyway
        pass


def _apply(comp: Any, fields: dict[str, Any], todo: bool, new: bool, now: float) -> None:
    zone = _text(fields, "timezone")
    for name, prop in (("summary", "SUMMARY"), ("location", "LOCATION"), ("description", "DESCRIPTION")):
        if name in fields:
            value = _text(fields, name)
            comp.pop(prop, None)
            if value:
                comp.add(prop, value)
    start = parse_time(fields["start"], "start", zone) if fields.get("start") is not None else None
    end = parse_time(fields["end"], "end", zone) if fields.get("end") is not None else None
    if start is None and new and not todo:
        raise FieldError("start", "start is required")
    if start is None and not new and end is not None and not todo:
        start = comp["DTSTART"].dt
    if start is not None and end is not None:
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise FieldError("end", "start and end must both be dates or both date-times")
        if (end <= start) if todo is False else (end < start):
            raise FieldError("end", "end must be after start")
    if start is not None:
        comp.pop("DTSTART", None)
        comp.add("DTSTART", start)
    if end is not None:
        key = "DUE" if todo else "DTEND"
        comp.pop(key, None)
        comp.pop("DURATION", None)
        comp.add(key, end)
    elif new and not todo and isinstance(start, date) and not isinstance(start, datetime):
        comp.add("DTEND", start + timedelta(days=1))
    if "rrule" in fields:
        comp.pop("RRULE", None)
        if fields["rrule"]:
            comp.add("RRULE", _rrule(fields["rrule"]))
    conference = fields.get("conference")
    if isinstance(conference, str) and conference:
        if not conference.startswith(("https://", "http://")) or len(conference) > 2000:
            raise FieldError("conference", "conference must be an http(s) URL")
        comp.pop("CONFERENCE", None)
        comp.add("CONFERENCE", conference, parameters={"VALUE": "URI", "FEATURE": ["AUDIO", "VIDEO"]})
    if todo and "completed" in fields:
        comp.pop("STATUS", None)
        comp.pop("COMPLETED", None)
        if fields["completed"]:
            comp.add("STATUS", "COMPLETED")
            comp.add("COMPLETED", stamp(now))
        else:
            comp.add("STATUS", "NEEDS-ACTION")


def patch(text: str, fields: dict[str, Any], now: float) -> str:
    """Apply REST fields to the master component of a stored object; returns the new text."""
    from icalendar import Calendar  # loaded on first use: icalendar is large
    cal = Calendar.from_ical(text)
    master, overrides = recurrence.master_and_overrides([c for c in cal.subcomponents if c.name in ("VEVENT", "VTODO")])
    comp = master if master is not None else next(iter(overrides.values()), None)
    if comp is None:
        raise FieldError("id", "nothing to change in this object")
    _apply(comp, fields, comp.name == "VTODO", False, now)
    seq = int(comp.get("SEQUENCE", 0) or 0)
    comp.pop("SEQUENCE", None)
    comp.add("SEQUENCE", seq + 1)
    comp.pop("DTSTAMP", None)
    comp.add("DTSTAMP", stamp(now))
    _timezones(cal)
    return cal.to_ical().decode("utf-8")


def rfc3339(epoch: int, floating: bool, all_day: bool) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch)
    if all_day:
        return moment.date().isoformat()
    if floating:
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def item(object_id: int, calendar: str, inst: Instance, recurring: bool) -> dict[str, Any]:
    """One instance as a list item (INTERFACE.md: event list item)."""
    comp = inst.component
    start_prop = comp.get("DTSTART")
    all_day = start_prop is not None and not isinstance(start_prop.dt, datetime)
    out: dict[str, Any] = {"id": str(object_id), "summary": str(comp.get("SUMMARY", "")), "calendar": calendar,
                           "type": "todo" if comp.name == "VTODO" else "event"}
    if comp.name == "VTODO":
        if start_prop is not None:
            out["start"] = rfc3339(recurrence.epoch(start_prop.dt), inst.floating, all_day)
        due = comp.get("DUE")
        if due is not None:
            out["due"] = rfc3339(recurrence.epoch(due.dt), recurrence.is_floating(due.dt),
                                 not isinstance(due.dt, datetime))
        out["status"] = str(comp.get("STATUS", "NEEDS-ACTION"))
        out["completed"] = out["status"] == "COMPLETED"
    else:
        out["start"] = rfc3339(inst.start, inst.floating, all_day)
        out["end"] = rfc3339(inst.end, inst.floating, all_day)
    if recurring and inst.recurrence_id:
        out["recurrence_id"] = inst.recurrence_id
    for key, prop in (("location", "LOCATION"), ("description", "DESCRIPTION"), ("conference", "CONFERENCE")):
        if comp.get(prop) is not None:
            out[key] = str(comp.get(prop))
    if comp.get("RRULE") is not None:
        out["rrule"] = comp["RRULE"].to_ical().decode()
    if comp.get("ORGANIZER") is not None:
        out["organizer"] = itip.address(comp["ORGANIZER"])
        out["attendees"] = [{"address": itip.address(a), "partstat": str(a.params.get("PARTSTAT", "NEEDS-ACTION"))}
                            for a in itip._listify(comp.get("ATTENDEE"))]
    return out


PARTSTATS = ("ACCEPTED", "DECLINED", "TENTATIVE")


def answer(text: str, who: str, partstat: Any, now: float) -> str:
    """An invitation answered: ``who``'s PARTSTAT in every component of a stored object.

    Stored by the attendee, this is what makes the server send the iTIP REPLY to the organizer
    (implicit scheduling, tau.calendar.scheduling); the SEQUENCE stays the organizer's.
    """
    from icalendar import Calendar  # loaded on first use: icalendar is large
    if not isinstance(partstat, str) or partstat.upper() not in PARTSTATS:
        raise FieldError("partstat", "partstat is ACCEPTED, DECLINED or TENTATIVE")
    cal = Calendar.from_ical(text)
    found = False
    for comp in itip.components(cal):
        for att in itip._listify(comp.get("ATTENDEE")):
            if itip.address(att) == who:
                att.params["PARTSTAT"] = partstat.upper()
                att.params.pop("RSVP", None)
                found = True
        comp.pop("DTSTAMP", None)
        comp.add("DTSTAMP", stamp(now))
    if not found:
        raise FieldError("partstat", "you are not an attendee of this event")
    return cal.to_ical().decode("utf-8")
