"""iTIP messages (RFC 5546) built from and applied to iCalendar objects: no I/O here.

``request``/``cancel``/``reply`` build the scheduling messages an organizer or attendee sends;
``apply_request``/``apply_reply``/``apply_cancel`` compute the recipient's new copy. The rules
that matter for safety live here too: a REPLY only changes the PARTSTAT of the attendee who
sent it, a REQUEST or CANCEL only counts when it comes from the event's organizer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tau.calendar import recurrence

if TYPE_CHECKING:
    from icalendar import Calendar

PRODID = "-//tau//TauCalendar//EN"
TIMED = ("VEVENT", "VTODO")
UNSIGNIFICANT = {"DTSTAMP", "LAST-MODIFIED", "SEQUENCE", "CREATED", "ATTENDEE"}
SCHEDULE_PARAMS = ("SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")


def address(value: Any) -> str:
    return str(value or "").strip().lower().removeprefix("mailto:")


def components(cal: Any) -> list[Any]:
    return [c for c in cal.subcomponents if c.name in TIMED]


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def organizer_of(cal: Any) -> str:
    for comp in components(cal):
        if comp.get("ORGANIZER") is not None:
            return address(comp["ORGANIZER"])
    return ""


def attendees(cal: Any, scheduled_by_server: bool = True) -> set[str]:
    """Attendee addresses (without those a client schedules itself, RFC 6638 §7.1)."""
    out = set()
    for comp in components(cal):
        for att in _listify(comp.get("ATTENDEE")):
            agent = str(getattr(att, "params", {}).get("SCHEDULE-AGENT", "SERVER")).upper()
            if not scheduled_by_server or agent == "SERVER":
                out.add(address(att))
    return out


def rid_of(comp: Any) -> str:
    rid = comp.get("RECURRENCE-ID")
    return "" if rid is None else recurrence.ical_text(rid.dt)


def partstats(cal: Any, who: str) -> dict[str, str]:
    """RECURRENCE-ID key → ``who``'s PARTSTAT in each component."""
    out = {}
    for comp in components(cal):
        for att in _listify(comp.get("ATTENDEE")):
            if address(att) == who:
                out[rid_of(comp)] = str(att.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
    return out


def sequence(cal: Any) -> int:
    values = [int(c.get("SEQUENCE", 0) or 0) for c in components(cal)]
    return max(values) if values else 0


def _signature(cal: Any) -> dict[str, Any]:
    out = {}
    for comp in components(cal):
        props = tuple(sorted((k, _text(v)) for k, v in comp.property_items(recursive=False)
                             if k not in UNSIGNIFICANT and k not in ("BEGIN", "END")))
        out[rid_of(comp)] = (props, tuple(sorted(address(a) for a in _listify(comp.get("ATTENDEE")))))
    return out


def _text(value: Any) -> str:
    try:
        raw = value.to_ical()
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    except Exception:
        return str(value)


def significant(old: Any, new: Any) -> bool:
    """Did the organizer change what attendees must hear about (not just PARTSTATs)?"""
    return _signature(old) != _signature(new)


def _shell(method: str, source: Any | None = None) -> Calendar:
    from icalendar import Calendar  # loaded on first use: icalendar is large
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("METHOD", method)
    if source is not None:
        for tz in source.walk("VTIMEZONE"):
            cal.add_component(tz)
    return cal


def _clean(comp: Any) -> Any:
    """A copy without alarms and SCHEDULE-* parameters (RFC 6638 §3.2, RFC 5546)."""
    out = comp.copy()
    for key in ("ATTENDEE", "ORGANIZER"):
        for value in _listify(out.get(key)):
            for param in SCHEDULE_PARAMS:
                value.params.pop(param, None)
    return out


def request(cal: Any) -> Calendar:
    """METHOD:REQUEST with the organizer's components (RFC 5546 §3.2.2)."""
    out = _shell("REQUEST", cal)
    for comp in components(cal):
        out.add_component(_clean(comp))
    return out


def cancel(cal: Any, only: set[str] | None = None, *, now: float) -> Calendar:
    """METHOD:CANCEL of the whole event (RFC 5546 §3.2.5), optionally to some attendees only."""
    from icalendar import vCalAddress  # loaded on first use: icalendar is large
    out = _shell("CANCEL", cal)
    for comp in components(cal):
        if rid_of(comp):
            continue
        c = comp.__class__()
        for key in ("UID", "DTSTART", "SUMMARY", "ORGANIZER"):
            if comp.get(key) is not None:
                c.add(key, comp[key])
        c.add("DTSTAMP", _stamp(now))
        c.add("SEQUENCE", int(comp.get("SEQUENCE", 0) or 0) + 1)
        c.add("STATUS", "CANCELLED")
        for att in _listify(comp.get("ATTENDEE")):
            if only is None or address(att) in only:
                c.add("ATTENDEE", vCalAddress(f"mailto:{address(att)}"))
        out.add_component(c)
    return out


def reply(cal: Any, who: str, partstat: str | None = None, *, now: float) -> Calendar:
    """METHOD:REPLY carrying ``who``'s PARTSTAT for each component (RFC 5546 §3.2.3)."""
    from icalendar import vCalAddress  # loaded on first use: icalendar is large
    out = _shell("REPLY", cal)
    for comp in components(cal):
        mine = [a for a in _listify(comp.get("ATTENDEE")) if address(a) == who]
        if not mine:
            continue
        c = comp.__class__()
        for key in ("UID", "RECURRENCE-ID", "DTSTART", "DTEND", "SUMMARY", "ORGANIZER", "SEQUENCE"):
            if comp.get(key) is not None:
                c.add(key, comp[key])
        c.add("DTSTAMP", _stamp(now))
        att = vCalAddress(f"mailto:{who}")
        att.params["PARTSTAT"] = partstat or str(mine[0].params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        c.add("ATTENDEE", att)
        out.add_component(c)
    return out


def _stamp(now: float) -> datetime:
    return datetime.fromtimestamp(int(now), UTC)


def without_method(cal: Any) -> Calendar:
    from icalendar import Calendar  # loaded on first use: icalendar is large
    out = Calendar()
    for key, value in cal.property_items(recursive=False):
        if key not in ("BEGIN", "END", "METHOD"):
            out.add(key, value)
    for sub in cal.subcomponents:
        out.add_component(sub)
    return out


def apply_request(itip: Any, current: Any | None, who: str) -> Calendar | None:
    """The attendee's new copy after a REQUEST (None: stale, ignore). Same SEQUENCE keeps the
    attendee's answer; a new SEQUENCE means the organizer changed something: answer again."""
    if current is not None and sequence(itip) < sequence(current):
        return None
    new = without_method(itip)
    if current is not None and sequence(itip) == sequence(current):
        answers = partstats(current, who)
        for comp in components(new):
            for att in _listify(comp.get("ATTENDEE")):
                if address(att) == who and rid_of(comp) in answers:
                    att.params["PARTSTAT"] = answers[rid_of(comp)]
        for comp in components(current):  # the attendee's own alarms survive an update
            match = next((c for c in components(new) if rid_of(c) == rid_of(comp)), None)
            if match is not None:
                for alarm in comp.walk("VALARM"):
                    match.add_component(alarm)
    return new


def apply_reply(itip: Any, current: Any, sender: str) -> Calendar | None:
    """The organizer's copy with the sender's PARTSTAT updated (None: nothing applies)."""
    changed = False
    by_rid = {rid_of(c): c for c in components(current)}
    for comp in components(itip):
        target = by_rid.get(rid_of(comp))
        if target is None:
            continue
        for att in _listify(comp.get("ATTENDEE")):
            if address(att) != sender:
                continue  # a REPLY speaks only for the attendee who sent it
            partstat = str(att.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
            for mine in _listify(target.get("ATTENDEE")):
                if address(mine) == sender:
                    mine.params["PARTSTAT"] = partstat
                    mine.params.pop("RSVP", None)
                    mine.params["SCHEDULE-STATUS"] = "2.0"
                    changed = True
    return current if changed else None


def apply_cancel(itip: Any, current: Any) -> Calendar:
    """The attendee's copy after a CANCEL: the whole event, or the instances named, cancelled."""
    rids = {rid_of(c) for c in components(itip)}
    comps = components(current)
    if "" in rids or not rids:
        for comp in comps:
            comp.pop("STATUS", None)
            comp.add("STATUS", "CANCELLED")
        return current
    master = next((c for c in comps if not rid_of(c)), None)
    for comp in components(itip):
        target = next((c for c in comps if rid_of(c) == rid_of(comp)), None)
        if target is not None:
            target.pop("STATUS", None)
            target.add("STATUS", "CANCELLED")
        elif master is not None and comp.get("RECURRENCE-ID") is not None:
            master.add("EXDATE", comp["RECURRENCE-ID"].dt)
    return current
