"""Validating calendar object resources (RFC 4791 §4.1, §5.3.2.1) and computing their index rows.

A PUT body must be UTF-8 iCalendar (``supported-calendar-data``), parse cleanly with
``icalendar`` (``valid-calendar-data``: it is lenient and records broken values in
``component.errors``, which we treat as fatal), hold one VCALENDAR with components of one type
and one UID (``valid-calendar-object-resource``), a type the collection supports
(``supported-calendar-component``) and fit ``max-resource-size``. The same pass expands the
instances up to the index horizon (``recurrence``), so nothing is parsed again at query time.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from tau.calendar import recurrence
from tau.calendar.recurrence import Instance

C = "urn:ietf:params:xml:ns:caldav"
MAX_RESOURCE_SIZE = 1024 * 1024          # CALDAV:max-resource-size (RFC 4791 §5.2.5)
MAX_COMPONENTS = 2000                    # overridden instances and time zones in one resource
INDEX_YEARS = 3                          # instances indexed up to now + this
MAX_INDEXED = 3000                       # instances indexed per resource
LONG_SPAN = 31 * 86400
COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")


class InvalidObject(Exception):
    """A refused calendar object: ``condition`` names the CalDAV precondition (RFC 4791 §5.3.2.1)."""

    def __init__(self, condition: str, message: str, status: int = 403, href: str | None = None) -> None:
        super().__init__(message)
        self.condition, self.message, self.status, self.href = condition, message, status, href

    def xml(self) -> str:
        inner = f"<D:href>{escape(self.href)}</D:href>" if self.href else ""
        return f'<C:{self.condition} xmlns:C="{C}">{inner}</C:{self.condition}>'


@dataclass
class IndexRow:
    start: int
    end: int
    floating: bool
    long_span: bool
    busy: str
    recurrence_id: str


@dataclass
class ParsedObject:
    uid: str
    component: str
    text: str
    calendar: Any
    components: list[Any]
    rows: list[IndexRow] = field(default_factory=list)
    indexed_until: int | None = None

    @property
    def etag(self) -> str:
        return etag_of(self.text)

    @property
    def master(self) -> Any:
        master, overrides = recurrence.master_and_overrides(self.components)
        return master if master is not None else next(iter(overrides.values()), None)


def etag_of(text: str) -> str:
    return '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + '"'


def parse_calendar(data: bytes | str) -> Any:
    """One VCALENDAR, or InvalidObject(valid-calendar-data)."""
    from icalendar import Calendar  # loaded on first use: icalendar is large
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidObject("supported-calendar-data", "calendar data is not UTF-8")
    else:
        text = data
    if not text.lstrip("\ufeff \r\n\t").upper().startswith("BEGIN:VCALENDAR"):
        raise InvalidObject("valid-calendar-data", "not an iCalendar object (BEGIN:VCALENDAR expected)")
    try:
        cals = Calendar.from_ical(text.lstrip("\ufeff"), multiple=True)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError, OSError) as exc:
        # OSError: a TZID naming a tzdata folder ("Europe/") makes zoneinfo open a directory
        raise InvalidObject("valid-calendar-data", f"iCalendar does not parse: {str(exc)[:200]}")
    if len(cals) != 1 or cals[0].name != "VCALENDAR":
        raise InvalidObject("valid-calendar-data", "exactly one VCALENDAR expected")
    cal = cals[0]
    for comp in cal.walk():
        errors = getattr(comp, "errors", None)
        if errors:
            name, problem = errors[0] if isinstance(errors[0], tuple) else (comp.name, errors[0])
            raise InvalidObject("valid-calendar-data", f"invalid {name} in {comp.name}: {str(problem)[:200]}")
    return cal


def parse_object(data: bytes | str, supported: tuple[str, ...] = COMPONENTS, now: float | None = None,
                 max_size: int = MAX_RESOURCE_SIZE) -> ParsedObject:
    """Validate a calendar object resource and compute its index rows (runs in a thread)."""
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > max_size:
        raise InvalidObject("max-resource-size", f"calendar object over {max_size} bytes")
    cal = parse_calendar(data)
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    components = [c for c in cal.subcomponents if c.name != "VTIMEZONE"]
    if len(cal.subcomponents) > MAX_COMPONENTS:
        raise InvalidObject("valid-calendar-object-resource", "too many components in one resource")
    kinds = {c.name for c in components}
    if not components:
        raise InvalidObject("valid-calendar-object-resource", "no VEVENT, VTODO or VJOURNAL")
    if len(kinds) != 1:
        raise InvalidObject("valid-calendar-object-resource", "components of one type expected")
    kind = kinds.pop()
    if kind not in COMPONENTS:
        raise InvalidObject("supported-calendar-component", f"{kind} is not supported")
    if kind not in supported:
        raise InvalidObject("supported-calendar-component", f"this calendar does not take {kind}")
    uids = {str(c.get("UID", "")).strip() for c in components}
    if len(uids) != 1 or "" in uids:
        raise InvalidObject("valid-calendar-object-resource", "one UID per resource is required")
    uid = uids.pop()
    if len(uid) > 1024:
        raise InvalidObject("valid-calendar-object-resource", "UID too long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uid):  # RFC 5545 §3.3.11: no CTLs in TEXT
        raise InvalidObject("valid-calendar-object-resource", "UID contains control characters")
    _check_single(cal)
    masters, overrides = 0, set()
    for comp in components:
        rid = comp.get("RECURRENCE-ID")
        if rid is None:
            masters += 1
        else:
            key = recurrence.ical_text(rid.dt)
            if key in overrides:
                raise InvalidObject("valid-calendar-object-resource", "two components with one RECURRENCE-ID")
            overrides.add(key)
        for rule in _listify(comp.get("RRULE")):
            _check_rule(rule)
            _check_setpos(rule)
        if kind == "VEVENT" and comp.get("DTSTART") is None:
            raise InvalidObject("valid-calendar-object-resource", "VEVENT without DTSTART")
    if masters > 1:
        raise InvalidObject("valid-calendar-object-resource", "more than one master component")
    parsed = ParsedObject(uid, kind, text, cal, components)
    index(parsed, now)
    return parsed


_FILTERS = ("BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH")


# RFC 5545 §3.6.1-§3.6.6: "MUST NOT occur more than once"; the code reads these as one value (.dt)
_SINGLE = frozenset(("UID", "DTSTAMP", "DTSTART", "DTEND", "DUE", "DURATION", "RECURRENCE-ID", "ORGANIZER",
                     "SEQUENCE", "TRIGGER", "TZOFFSETFROM", "TZOFFSETTO", "TZID"))


def _check_single(cal: Any) -> None:
    for comp in cal.walk():
        for name in _SINGLE:
            if isinstance(comp.get(name), list):
                raise InvalidObject("valid-calendar-data", f"{name} occurs more than once in {comp.name}")


def _check_setpos(rule: Any) -> None:
    """A BYSETPOS beyond the occurrences one FREQ period can hold never selects anything, and
    dateutil then walks period by period to the year 9999 without yielding (FREQ=MINUTELY;
    BYSETPOS=2: hours of CPU for one PUT; no per-occurrence budget can stop it): refused."""
    positions = _listify(rule.get("BYSETPOS"))
    if not positions:
        return
    freq = str(rule.get("FREQ", [""])[0]).upper()

    def count(key: str) -> int:
        return len(set(_listify(rule.get(key)))) or 1  # unset: DTSTART's value, one

    per_day = count("BYHOUR") * count("BYMINUTE") * count("BYSECOND")
    bound = {"SECONDLY": 1, "MINUTELY": count("BYSECOND"), "HOURLY": count("BYMINUTE") * count("BYSECOND"),
             "DAILY": per_day, "WEEKLY": count("BYDAY") * per_day, "MONTHLY": 31 * per_day}.get(freq, 366 * per_day)
    try:
        beyond = any(abs(int(p)) > bound for p in positions)
    except (TypeError, ValueError):
        beyond = True
    if beyond:
        raise InvalidObject("valid-calendar-data", f"BYSETPOS beyond the {bound} occurrences of one {freq} period")


def _listify(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _check_rule(rule: Any) -> None:
    """SECONDLY rules filtered by larger units make dateutil step through every second of the
    days they skip (seconds of CPU per query): refused as unsupported rather than served slowly."""
    freq = str(rule.get("FREQ", [""])[0]).upper()
    if _sub_minute(rule, freq):  # as Google Calendar: no calendar needs an event every few seconds
        raise InvalidObject("valid-calendar-object-resource",
                            "recurrence more often than once a minute is not supported")
    if freq == "SECONDLY" and any(part in rule for part in _FILTERS):
        raise InvalidObject("valid-calendar-data", "SECONDLY rules filtered by larger units are not supported")
    if len(rule.get("BYSETPOS", [])) > 366 or any(len(v) > 400 for v in rule.values() if isinstance(v, list)):
        raise InvalidObject("valid-calendar-data", "recurrence rule too large")


def _sub_minute(rule: Any, freq: str) -> bool:
    """FREQ=SECONDLY with an INTERVAL under 60, or several BYSECOND values (instances seconds apart)."""
    try:
        interval = int(rule.get("INTERVAL", [1])[0] or 1)
    except (TypeError, ValueError):
        interval = 1
    return (freq == "SECONDLY" and interval < 60) or len(_listify(rule.get("BYSECOND"))) > 1


def index(parsed: ParsedObject, now: float | None = None) -> None:
    """Fill ``rows`` and ``indexed_until`` (RFC 4791 §9.9 ranges up to the horizon)."""
    horizon = int(now if now is not None else time.time()) + INDEX_YEARS * 366 * 86400
    try:
        result = recurrence.expand(parsed.components, until=horizon, limit=MAX_INDEXED)
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise InvalidObject("valid-calendar-data", f"recurrence cannot be evaluated: {str(exc)[:200]}")
    parsed.rows = [row_of(i) for i in result.instances]
    parsed.indexed_until = None if result.complete else int(result.resume_at or horizon)


def row_of(inst: Instance) -> IndexRow:
    return IndexRow(inst.start, inst.end, inst.floating, inst.end - inst.start > LONG_SPAN, inst.busy,
                    inst.recurrence_id)


def serialize(cal: Any) -> str:
    return cal.to_ical().decode("utf-8")
