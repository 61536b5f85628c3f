"""CALDAV:calendar-data in REPORT requests (RFC 4791 §9.6): what to return of each object.

An empty ``<C:calendar-data/>`` returns the stored text untouched (no parse). ``comp``/``prop``
select parts (§9.6.1), ``expand`` turns a recurrence set into its instances in a window with
UTC times and no rules (§9.6.5), ``limit-recurrence-set`` keeps the master and the overrides
that overlap the window (§9.6.6), ``limit-freebusy-set`` trims FREEBUSY periods (§9.6.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tau.calendar import recurrence
from tau.calendar.filters import FilterError, TimeRange, c, parse_time_range
from tau.calendar.ical import parse_calendar

RULES = ("RRULE", "RDATE", "EXDATE", "EXRULE")
MAX_EXPANDED = 10_000   # instances one expanded object may produce in a response


class TooMany(Exception):
    """An expansion over the response limit: DAV:number-of-matches-within-limits (RFC 5323 §5.17)."""


@dataclass
class CompSelect:
    name: str
    allprop: bool = True
    props: set[str] = field(default_factory=set)
    allcomp: bool = True
    comps: list[CompSelect] = field(default_factory=list)


@dataclass
class DataRequest:
    select: CompSelect | None = None
    expand: TimeRange | None = None
    limit_recurrence: TimeRange | None = None
    limit_freebusy: TimeRange | None = None

    @property
    def verbatim(self) -> bool:
        return self.select is None and self.expand is None and self.limit_recurrence is None \
            and self.limit_freebusy is None


def _select(elem: Any, depth: int = 0) -> CompSelect:
    if depth > 4:
        raise FilterError("valid-calendar-data", "comp selection nested too deep", 400)
    sel = CompSelect((elem.get("name") or "").upper(), allprop=False, allcomp=False)
    for child in elem:
        if child.tag == c("allprop"):
            sel.allprop = True
        elif child.tag == c("prop"):
            sel.props.add((child.get("name") or "").upper())
        elif child.tag == c("allcomp"):
            sel.allcomp = True
        elif child.tag == c("comp"):
            sel.comps.append(_select(child, depth + 1))
    # neither allprop nor prop (or allcomp nor comp): everything, as servers read it in practice
    sel.allprop = sel.allprop or not any(ch.tag == c("prop") for ch in elem)
    sel.allcomp = sel.allcomp or not any(ch.tag == c("comp") for ch in elem)
    return sel


def parse_request(elem: Any) -> DataRequest:
    """The ``calendar-data`` element of a report's ``prop``."""
    ctype = elem.get("content-type", "text/calendar")
    version = elem.get("version", "2.0")
    if ctype.split(";")[0].strip().lower() != "text/calendar" or version != "2.0":
        raise FilterError("supported-calendar-data", "only text/calendar 2.0 is served")
    req = DataRequest()
    for child in elem:
        if child.tag == c("comp"):
            req.select = _select(child)
        elif child.tag == c("expand"):
            req.expand = _window(child)
        elif child.tag == c("limit-recurrence-set"):
            req.limit_recurrence = _window(child)
        elif child.tag == c("limit-freebusy-set"):
            req.limit_freebusy = _window(child)
    return req


def _window(elem: Any) -> TimeRange:
    tr = parse_time_range(elem)
    if tr.start == recurrence.MIN_TS or tr.end == recurrence.MAX_TS:
        raise FilterError("valid-filter", f"{elem.tag.split('}')[-1]} needs start and end")
    return tr


def render(text: str, req: DataRequest, offset: int = 0) -> str:
    """The calendar-data to return for one object's stored ``text``."""
    if req.verbatim:
        return text
    cal = parse_calendar(text)
    if req.expand is not None:
        cal = expand(cal, req.expand, offset)
    elif req.limit_recurrence is not None:
        cal = limit_recurrence(cal, req.limit_recurrence, offset)
    if req.limit_freebusy is not None:
        _limit_freebusy(cal, req.limit_freebusy)
    if req.select is not None:
        cal = _apply_select(cal, req.select)
    return cal.to_ical().decode("utf-8")


def _utc(epoch: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch)


def expand(cal: Any, window: TimeRange, offset: int = 0) -> Any:
    """§9.6.5: one component per instance overlapping ``window``, RECURRENCE-ID set, times in UTC."""
    from icalendar import Calendar  # loaded on first use: icalendar is large
    out = Calendar()
    for key, value in cal.property_items(recursive=False):
        if key not in ("BEGIN", "END"):
            out.add(key, value)
    timed = [comp for comp in cal.subcomponents if comp.name in recurrence.TIMED]
    others = [comp for comp in cal.subcomponents if comp.name not in recurrence.TIMED + ("VTIMEZONE",)]
    recurring = recurrence.recurs(timed)
    instances, certain = recurrence.between(timed, window.start, window.end, offset, limit=MAX_EXPANDED * 2)
    if len(instances) > MAX_EXPANDED or not certain:
        raise TooMany(f"more than {MAX_EXPANDED} instances in the expand window")
    for inst in instances:
        comp = inst.component.copy()
        for sub in inst.component.subcomponents:
            comp.add_component(sub)
        for name in RULES:
            comp.pop(name, None)
        all_day = not isinstance(inst.component["DTSTART"].dt, datetime) if "DTSTART" in inst.component else False
        shift = offset if inst.floating else 0
        start = _utc(inst.start - shift)
        if recurring:
            comp.pop("RECURRENCE-ID", None)
            comp.add("RECURRENCE-ID", start.date() if all_day else start)
        if "DTSTART" in comp:
            comp.pop("DTSTART")
            comp.add("DTSTART", start.date() if all_day else start)
        if "DTEND" in comp:
            comp.pop("DTEND")
            end = _utc(inst.end - shift)
            comp.add("DTEND", end.date() if all_day else end)
        if "DUE" in comp and "DTSTART" not in comp:
            comp.pop("DUE")
            comp.add("DUE", _utc(inst.end - shift))
        out.add_component(comp)
    for comp in others:
        out.add_component(comp)
    return out


def limit_recurrence(cal: Any, window: TimeRange, offset: int = 0) -> Any:
    """§9.6.6: the master plus the overridden instances that overlap ``window``."""
    timed = [comp for comp in cal.subcomponents if comp.name in recurrence.TIMED]
    keep: set[int] = set()
    for comp in timed:
        if comp.get("RECURRENCE-ID") is None:
            keep.add(id(comp))
            continue
        inst = recurrence.expand([comp]).instances
        rid = comp["RECURRENCE-ID"].dt
        rid_epoch = recurrence.epoch(rid) - (offset if recurrence.is_floating(rid) else 0)
        if any(i.overlaps(window.start, window.end, offset) for i in inst) or window.start <= rid_epoch < window.end:
            keep.add(id(comp))
    cal.subcomponents = [comp for comp in cal.subcomponents if comp.name not in recurrence.TIMED or id(comp) in keep]
    return cal


def _limit_freebusy(cal: Any, window: TimeRange) -> None:
    for fb in cal.walk("VFREEBUSY"):
        values = fb.get("FREEBUSY")
        if values is None:
            continue
        kept = []
        for prop in values if isinstance(values, list) else [values]:
            periods = [p for p in getattr(prop, "dts", []) if isinstance(p.dt, tuple)]
            if any(recurrence.epoch(p.dt[0]) < window.end and recurrence.epoch(_period_end(p.dt)) > window.start
                   for p in periods) or not periods:
                kept.append(prop)
        fb.pop("FREEBUSY")
        for prop in kept:
            fb.add("FREEBUSY", prop)


def _period_end(period: tuple[Any, Any]) -> Any:
    start, other = period
    return start + other if isinstance(other, timedelta) else other


def _apply_select(comp: Any, sel: CompSelect) -> Any:
    if not sel.allprop:
        for key in list(comp.keys()):
            if key not in sel.props:
                comp.pop(key)
    if not sel.allcomp:
        wanted = {s.name: s for s in sel.comps}
        comp.subcomponents = [_apply_select(sub, wanted[sub.name]) for sub in comp.subcomponents
                              if sub.name in wanted]
    return comp
