"""Recurrence expansion (RFC 5545 §3.8.5, §3.3.10) and CalDAV time-range semantics (RFC 4791 §9.9).

One calendar object resource holds the components of one UID: a master (no RECURRENCE-ID) and
its overridden instances (RFC 5545 §3.8.4.4). ``expand`` turns them into ``Instance`` ranges:
RRULE (``dateutil.rrule``, lazily, so a rule without end costs only what is iterated), RDATE
(DATE, DATE-TIME or PERIOD), EXDATE, overrides replacing or adding instances. Time zones come
from ``icalendar``: IANA TZIDs resolve to ``zoneinfo``, custom VTIMEZONEs to tz objects built from
their rules; recurrence steps in wall-clock time, so 10:00 stays 10:00 across DST.

Every instance is an integer range ``[start, end)`` in seconds since the epoch, chosen so that
the single test ``start < query_end AND end > query_start`` reproduces the §9.9 tables (a
zero-length instant becomes one second long; a VTODO with neither date spans all time).
Floating values (no time zone, and all-day DATEs) are stored as their wall-clock time read as
UTC with ``floating`` set; a query resolves them in its time zone (§9.9: "floating... in the
time zone of the query"). Iteration is bounded everywhere: ``limit`` instances and ``until``, and
wall time: :data:`EXPAND_SECONDS` per expansion and, inside :func:`work_budget` (one request's
thread work), :data:`WORK_SECONDS` for all of them together. An expansion cut short by time is
incomplete, exactly as one cut by ``limit``: callers already treat that as "not certain".
"""

from __future__ import annotations

import calendar as _cal
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, TypeVar

from dateutil.rrule import rrule, rruleset, rrulestr

MIN_TS = -62135596800          # 0001-01-01T00:00:00Z: "since the beginning of time"
MAX_TS = 253402300800          # 10000-01-01T00:00:00Z: "until the end of time"
MAX_ITERATIONS = 50_000        # occurrences one expansion may step through, whatever it finds
EXPAND_SECONDS = 1.0           # wall time one expansion may take
WORK_SECONDS = 3.0             # wall time of all expansions inside one work_budget (one request)
_CHECK_EVERY = 256             # occurrences between two clock reads
DAY = 86400
TIMED = ("VEVENT", "VTODO", "VJOURNAL")


@dataclass(frozen=True)
class Instance:
    start: int
    end: int
    floating: bool
    recurrence_id: str          # "" for a non-recurring component, else the RECURRENCE-ID value (iCalendar text)
    component: Any              # the icalendar component this instance shows (master or override)
    busy: str = ""              # VEVENT only: BUSY, BUSY-TENTATIVE or FREE (RFC 5545 §3.2.9)

    def overlaps(self, start: int, end: int, offset: int = 0) -> bool:
        """``[start, end)`` in UTC; ``offset`` (seconds east of UTC) resolves a floating instance."""
        shift = offset if self.floating else 0
        return self.start - shift < end and self.end - shift > start


@dataclass
class Expansion:
    instances: list[Instance]
    #: True when every instance is listed; False when ``until`` or ``limit`` stopped the iteration
    complete: bool
    #: when not complete: instances starting at or after this (UTC-ish epoch) were not produced
    resume_at: int | None = None


# -- time budget ----------------------------------------------------------------------------------

class _Deadline(threading.local):
    at: float = float("inf")


_deadline = _Deadline()
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def work_budget(seconds: float | None = None) -> Iterator[None]:
    """Every expansion inside (on this thread) stops by ``seconds`` (default :data:`WORK_SECONDS`)
    from now: one REPORT over an object with hundreds of alarms on a SECONDLY rule took 130 s of
    CPU without this."""
    previous = _deadline.at
    _deadline.at = min(previous, time.monotonic() + (WORK_SECONDS if seconds is None else seconds))
    try:
        yield
    finally:
        _deadline.at = previous


def budgeted(fn: F) -> F:
    """Run ``fn`` (a request's work handed to a thread) inside a fresh :func:`work_budget`."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with work_budget():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def out_of_time() -> bool:
    return time.monotonic() > _deadline.at


# -- values ---------------------------------------------------------------------------------------

def is_floating(value: date | datetime) -> bool:
    return not isinstance(value, datetime) or value.tzinfo is None


def epoch(value: date | datetime) -> int:
    """Seconds since the epoch; floating values are read as UTC wall-clock time."""
    if not isinstance(value, datetime):
        return _cal.timegm(value.timetuple())
    if value.tzinfo is None:
        return _cal.timegm(value.timetuple())
    try:
        return int(value.timestamp())
    except (OverflowError, ValueError, OSError):
        return MAX_TS if value.year > 5000 else MIN_TS


def as_datetime(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


def ical_text(value: date | datetime) -> str:
    """A RECURRENCE-ID key: UTC for zoned values, as-is for floating ones and dates."""
    if not isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    if value.tzinfo is None:
        return value.strftime("%Y%m%dT%H%M%S")
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _prop_dt(component: Any, name: str) -> date | datetime | None:
    prop = component.get(name)
    if prop is None:
        return None
    if isinstance(prop, list):
        prop = prop[0]
    value = getattr(prop, "dt", None)
    return value if isinstance(value, (date, datetime)) else None


def _duration(component: Any) -> timedelta | None:
    prop = component.get("DURATION")
    value = getattr(prop, "dt", None) if prop is not None else None
    return value if isinstance(value, timedelta) else None


def _same_kind(value: date | datetime, like: date | datetime, zone: tzinfo | None) -> datetime:
    """Coerce an RDATE/EXDATE/UNTIL value to the kind of DTSTART so dateutil can compare them."""
    dt = as_datetime(value)
    if isinstance(like, datetime) and like.tzinfo is not None:
        if dt.tzinfo is None:
            return dt.replace(tzinfo=zone)
        return dt.astimezone(zone)
    if dt.tzinfo is not None:
        return dt.astimezone(UTC).replace(tzinfo=None)
    return dt


# -- time-range semantics (RFC 4791 §9.9) ---------------------------------------------------------

def busy_type(component: Any) -> str:
    """FBTYPE of an event instance for free-busy (RFC 4791 §7.10, RFC 5545 §3.8.2.7)."""
    if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return "FREE"
    status = str(component.get("STATUS", "")).upper()
    if status == "CANCELLED":
        return "FREE"
    if status == "TENTATIVE":
        return "BUSY-TENTATIVE"
    return "BUSY"


def base_range(component: Any) -> tuple[date | datetime | None, timedelta | None, int, int, bool] | None:
    """(anchor, span, start, end, floating) of one non-expanded component, or None if it has no
    time at all and never matches a time-range (a VJOURNAL without DTSTART)."""
    name = component.name
    start = _prop_dt(component, "DTSTART")
    if name == "VEVENT" or (name == "VJOURNAL" and start is not None):
        if start is None:
            return None
        end = _prop_dt(component, "DTEND") if name == "VEVENT" else None
        span = _duration(component)
        if end is not None and span is None:
            span = as_datetime(end) - as_datetime(start) if is_floating(end) == is_floating(start) \
                else timedelta(seconds=epoch(end) - epoch(start))
        if span is None:
            span = timedelta(days=1) if not isinstance(start, datetime) else timedelta(0)
        s = epoch(start)
        return start, span, s, max(s + int(span.total_seconds()), s + 1), is_floating(start)
    if name == "VTODO":
        due = _prop_dt(component, "DUE")
        span = _duration(component)
        if start is not None:
            if due is not None and span is None:
                span = timedelta(seconds=epoch(due) - epoch(start))
            span = span or timedelta(0)
            s = epoch(start)
            return start, span, s, max(s + int(span.total_seconds()), s + 1), is_floating(start)
        if due is not None:
            d = epoch(due)
            return due, timedelta(0), d - 1, d, is_floating(due)
        completed, created = _prop_dt(component, "COMPLETED"), _prop_dt(component, "CREATED")
        if completed is not None or created is not None:
            points = [epoch(v) for v in (completed, created) if v is not None]
            end = max(points) + 1 if completed is not None else MAX_TS
            return None, None, min(points), end, False
        return None, None, MIN_TS, MAX_TS, False
    return None


# -- expansion ------------------------------------------------------------------------------------

def master_and_overrides(components: list[Any]) -> tuple[Any | None, dict[str, Any]]:
    master = None
    overrides: dict[str, Any] = {}
    for comp in components:
        rid = _prop_dt(comp, "RECURRENCE-ID")
        if rid is None:
            master = master if master is not None else comp
        else:
            overrides[ical_text(rid)] = comp
    return master, overrides


def _single(comp: Any, rid: str = "") -> Instance | None:
    found = base_range(comp)
    if found is None:
        return None
    _, _, s, e, floating = found
    return Instance(s, e, floating, rid, comp, busy_type(comp) if comp.name == "VEVENT" else "")


_PERIOD = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": DAY, "WEEKLY": 7 * DAY}


def _fast_forward(recur: dict[str, Any], start: datetime, since: int) -> datetime:
    """A later DTSTART producing the same occurrences from ``since`` on, so a window far after
    DTSTART does not walk every occurrence in between. Only for rules without COUNT (which
    counts from the real DTSTART); months and years only when the day of month cannot clamp."""
    if "COUNT" in recur or since == MIN_TS:
        return start
    freq = str(recur.get("FREQ", [""])[0]).upper()
    interval = int(recur.get("INTERVAL", [1])[0] or 1)
    elapsed = since - epoch(start)
    if freq in _PERIOD:
        step = _PERIOD[freq] * interval
        periods = elapsed // step - 1
        return start + timedelta(seconds=periods * step) if periods > 0 else start
    if freq in ("MONTHLY", "YEARLY") and start.day <= 28:
        from dateutil.relativedelta import relativedelta

        months = 1 if freq == "MONTHLY" else 12
        periods = elapsed // (interval * months * 31 * DAY) - 1
        return start + relativedelta(months=periods * interval * months) if periods > 0 else start
    return start


_DAY_PARTS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
NEVER_YEARS = 28   # the weekday pattern of the Gregorian calendar repeats (almost) every 28 years


def never_matches(recur: dict[str, Any], start: datetime) -> bool:
    """True when no day in the next 28 years passes the rule's day filters.

    dateutil walks a rule that can never match (BYMONTH=2;BYMONTHDAY=30) to the year 9999,
    seconds of CPU per expansion, before it gives up; this cheap superset test avoids that.
    """
    if not any(part in recur for part in _DAY_PARTS):
        return False
    months = {int(m) for m in recur.get("BYMONTH", [])}
    monthdays = {int(d) for d in recur.get("BYMONTHDAY", [])}
    yeardays = {int(d) for d in recur.get("BYYEARDAY", [])}
    weeks = {int(w) for w in recur.get("BYWEEKNO", [])}
    names = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    weekdays = {names.index(str(d)[-2:].upper()) for d in recur.get("BYDAY", []) if str(d)[-2:].upper() in names}
    day = start.date() if isinstance(start, datetime) else start
    for _ in range(NEVER_YEARS * 366):
        if (not months or day.month in months) and (not weekdays or day.weekday() in weekdays) \
                and _in_month(day, monthdays) and _in_year(day, yeardays) and _in_week(day, weeks):
            return False
        day += timedelta(days=1)
    return True


def _in_month(day: date, monthdays: set[int]) -> bool:
    if not monthdays:
        return True
    length = (date(day.year + day.month // 12, day.month % 12 + 1, 1) - timedelta(days=1)).day
    return day.day in monthdays or day.day - length - 1 in monthdays


def _in_year(day: date, yeardays: set[int]) -> bool:
    if not yeardays:
        return True
    n = day.timetuple().tm_yday
    length = 366 if _cal.isleap(day.year) else 365
    return n in yeardays or n - length - 1 in yeardays


def _in_week(day: date, weeks: set[int]) -> bool:
    if not weeks:
        return True
    week = day.isocalendar()[1]
    # week numbering depends on WKST; a neighbouring ISO week keeps this test a superset
    return any(w in weeks or w - 54 in weeks for w in (week - 1, week, week + 1))


def _ruleset(master: Any, anchor: date | datetime, since: int = MIN_TS) -> rruleset | None:
    """The master's RRULE/RDATE/EXDATE as a dateutil rruleset (None when it does not recur)."""
    rules = master.get("RRULE")
    rdates = master.get("RDATE")
    if rules is None and rdates is None:
        return None
    start = as_datetime(anchor)
    zone = start.tzinfo
    rset = rruleset()
    rset.rdate(start)  # DTSTART is always the first instance (RFC 5545 §3.8.5.3)
    for rule in rules if isinstance(rules, list) else ([rules] if rules is not None else []):
        recur = {k: v for k, v in rule.items()}
        until = recur.pop("UNTIL", None)
        if never_matches(recur, start):
            continue
        text = rule.__class__(recur).to_ical().decode()
        parsed = rrulestr(text, dtstart=_fast_forward(recur, start, since), ignoretz=False)
        if until:
            parsed = parsed.replace(until=_same_kind(until[0], anchor, zone))
        assert isinstance(parsed, rrule)
        rset.rrule(parsed)
    for value in _dates(master, "RDATE"):
        rset.rdate(_same_kind(value[0], anchor, zone))
    for value in _dates(master, "EXDATE"):
        rset.exdate(_same_kind(value[0], anchor, zone))
    return rset


def _dates(component: Any, name: str) -> Iterator[tuple[date | datetime, timedelta | None]]:
    """Values of RDATE/EXDATE lines, PERIODs as (start, length)."""
    props = component.get(name)
    if props is None:
        return
    for prop in props if isinstance(props, list) else [props]:
        for item in getattr(prop, "dts", []):
            value = item.dt
            if isinstance(value, tuple):
                begin, other = value
                yield begin, (other if isinstance(other, timedelta) else other - begin)
            elif isinstance(value, (date, datetime)):
                yield value, None


def expand(components: list[Any], until: int = MAX_TS, limit: int = MAX_ITERATIONS,
           since: int = MIN_TS) -> Expansion:
    """Instances of one UID's components, by start, that start before ``until`` (UTC-ish epoch).

    ``since`` skips instances ending before it (on-demand expansion of a far window still steps
    through the rule from DTSTART, which ``limit`` bounds).
    """
    master, overrides = master_and_overrides([c for c in components if c.name in TIMED])
    if master is None:
        out = [i for rid, comp in overrides.items() if (i := _single(comp, rid)) is not None]
        return Expansion(sorted((i for i in out if i.end > since), key=lambda i: i.start), True)
    found = base_range(master)
    if found is None:
        return Expansion([], True)
    anchor, span, _, _, floating = found
    rset = _ruleset(master, anchor, since) if anchor is not None else None
    if rset is None:
        single = _single(master)
        return Expansion([single] if single is not None and single.end > since else [], True)
    assert span is not None and anchor is not None
    periods = {ical_text(_same_kind(v, anchor, as_datetime(anchor).tzinfo)): p
               for v, p in _dates(master, "RDATE") if p is not None}
    busy = busy_type(master) if master.name == "VEVENT" else ""
    instances: list[Instance] = []
    seen: set[str] = set()
    steps = 0
    complete, resume = True, None
    date_only = not isinstance(anchor, datetime)
    deadline = min(_deadline.at, time.monotonic() + EXPAND_SECONDS)
    try:
        for occurrence in rset:
            steps += 1
            s = epoch(occurrence)
            if s >= until or steps > limit or (steps % _CHECK_EVERY in (0, 1) and time.monotonic() > deadline):
                complete, resume = False, s
                break
            key = occurrence.strftime("%Y%m%d") if date_only else ical_text(occurrence)
            seen.add(key)
            if key in overrides:
                inst = _single(overrides[key], key)
                if inst is not None and inst.end > since:
                    instances.append(inst)
                continue
            length = periods.get(key, span)
            e = epoch(occurrence + length) if length else s
            if max(e, s + 1) > since:
                instances.append(Instance(s, max(e, s + 1), floating, key, master, busy))
    except (ValueError, OverflowError, TypeError):
        pass  # a rule that walks off the calendar (year 9999) simply ends there
    for key, comp in overrides.items():  # overrides for instances the rule does not produce
        if key not in seen:
            inst = _single(comp, key)
            if inst is not None and inst.end > since and (complete or inst.start < (resume or until)):
                instances.append(inst)
    instances.sort(key=lambda i: i.start)
    return Expansion(instances, complete, resume)


def recurs(components: list[Any]) -> bool:
    master, overrides = master_and_overrides([c for c in components if c.name in TIMED])
    return bool(overrides) or (master is not None and ("RRULE" in master or "RDATE" in master))


def between(components: list[Any], start: int, end: int, offset: int = 0,
            limit: int = MAX_ITERATIONS) -> tuple[list[Instance], bool]:
    """Instances overlapping ``[start, end)`` (UTC; ``offset`` resolves floating ones) and whether
    the answer is certain (False when ``limit`` stopped the walk before ``end``)."""
    margin = 14 * 3600 + 1
    result = expand(components, until=end + margin, limit=limit, since=start - margin)
    hits = [i for i in result.instances if i.overlaps(start, end, offset)]
    certain = result.complete or (result.resume_at is not None and result.resume_at >= end + margin)
    return hits, certain
