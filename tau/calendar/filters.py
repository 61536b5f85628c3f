"""CALDAV:filter (RFC 4791 §9.7): parsing and evaluation of calendar-query filters.

``parse_filter`` turns the XML into dataclasses, refusing what the RFC calls invalid with
``valid-filter`` (time-ranges must be UTC date-times, §9.9) and unknown collations with
``supported-collation`` (§7.5.1). ``plan`` extracts what the database can answer — the
component type and a top-level time-range — so the common query ("VEVENTs in this month") is
one index scan; ``matches`` evaluates the whole filter on a parsed object only when the filter
asks for more (prop-filters, text-match, nested components, is-not-defined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tau.calendar import recurrence
from tau.calendar.recurrence import MAX_TS, MIN_TS, epoch

C = "urn:ietf:params:xml:ns:caldav"
COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")
MAX_NODES = 200


def c(local: str) -> str:
    return "{" + C + "}" + local


class FilterError(Exception):
    """Maps to a 403 (or 400) with a CalDAV precondition element."""

    def __init__(self, condition: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.condition, self.message, self.status = condition, message, status


@dataclass
class TimeRange:
    start: int = MIN_TS
    end: int = MAX_TS


@dataclass
class TextMatch:
    text: str
    collation: str = "i;ascii-casemap"
    negate: bool = False

    def test(self, value: str) -> bool:
        if self.collation == "i;octet":
            hit = self.text in value
        elif self.collation == "i;unicode-casemap":
            hit = self.text.casefold() in value.casefold()
        else:
            hit = _ascii_lower(self.text) in _ascii_lower(value)
        return hit != self.negate


@dataclass
class ParamFilter:
    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass
class PropFilter:
    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    text_match: TextMatch | None = None
    params: list[ParamFilter] = field(default_factory=list)
    anyof: bool = False


@dataclass
class CompFilter:
    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    props: list[PropFilter] = field(default_factory=list)
    comps: list[CompFilter] = field(default_factory=list)
    anyof: bool = False


def _ascii_lower(s: str) -> str:
    return s.translate(_ASCII)


_ASCII = {i: i + 32 for i in range(ord("A"), ord("Z") + 1)}


# -- parsing --------------------------------------------------------------------------------------

def parse_utc(value: str | None, what: str) -> int | None:
    """``YYYYMMDDTHHMMSSZ`` (RFC 4791 §9.9) → epoch; anything else is valid-filter."""
    if value is None:
        return None
    value = value.strip()
    try:
        if len(value) != 16 or not value.endswith("Z") or value[8] != "T":
            raise ValueError
        return int(datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp())
    except (ValueError, OverflowError):
        raise FilterError("valid-filter", f"{what} must be a UTC date-time like 20240101T000000Z")


def parse_time_range(elem: Any) -> TimeRange:
    start, end = parse_utc(elem.get("start"), "start"), parse_utc(elem.get("end"), "end")
    if start is None and end is None:
        raise FilterError("valid-filter", "time-range needs start or end")
    tr = TimeRange(MIN_TS if start is None else start, MAX_TS if end is None else end)
    if tr.end <= tr.start:
        raise FilterError("valid-filter", "time-range end must be after its start")
    return tr


def _text_match(elem: Any) -> TextMatch:
    collation = elem.get("collation", "i;ascii-casemap")
    if collation not in COLLATIONS:
        raise FilterError("supported-collation", f"collation {collation} is not supported")
    negate = elem.get("negate-condition", "no").strip().lower() == "yes"
    return TextMatch(elem.text or "", collation, negate)


def _anyof(elem: Any) -> bool:
    return (elem.get("test") or "allof").strip().lower() == "anyof"


def _named(elem: Any, what: str) -> str:
    """The NAME of a comp-filter or prop-filter, which both must have."""
    name = (elem.get("name") or "").upper()
    if not name:
        raise FilterError("valid-filter", f"{what} needs a name")
    return name


def _shared_test(target: CompFilter | PropFilter, child: Any) -> bool:
    """is-not-defined and time-range, which comp-filter and prop-filter both take (RFC 4791 §9.7)."""
    if child.tag == c("is-not-defined"):
        target.is_not_defined = True
    elif child.tag == c("time-range"):
        target.time_range = parse_time_range(child)
    else:
        return False
    return True


def _prop_filter(elem: Any, budget: list[int]) -> PropFilter:
    _spend(budget)
    pf = PropFilter(_named(elem, "prop-filter"), anyof=_anyof(elem))
    for child in elem:
        if _shared_test(pf, child):
            continue
        if child.tag == c("text-match"):
            pf.text_match = _text_match(child)
        elif child.tag == c("param-filter"):
            _spend(budget)
            pname = (child.get("name") or "").upper()
            param = ParamFilter(pname)
            for sub in child:
                if sub.tag == c("is-not-defined"):
                    param.is_not_defined = True
                elif sub.tag == c("text-match"):
                    param.text_match = _text_match(sub)
            pf.params.append(param)
    return pf


def _comp_filter(elem: Any, budget: list[int], depth: int = 0) -> CompFilter:
    _spend(budget)
    if depth > 4:
        raise FilterError("valid-filter", "comp-filters nested too deep")
    cf = CompFilter(_named(elem, "comp-filter"), anyof=_anyof(elem))
    for child in elem:
        if _shared_test(cf, child):
            continue
        if child.tag == c("prop-filter"):
            cf.props.append(_prop_filter(child, budget))
        elif child.tag == c("comp-filter"):
            cf.comps.append(_comp_filter(child, budget, depth + 1))
    return cf


def _spend(budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise FilterError("valid-filter", "filter too large")


def parse_filter(elem: Any | None) -> CompFilter | None:
    """The filter's VCALENDAR comp-filter; None matches everything."""
    if elem is None:
        return None
    comps = [child for child in elem if child.tag == c("comp-filter")]
    if len(comps) != 1:
        raise FilterError("valid-filter", "filter needs exactly one comp-filter")
    cf = _comp_filter(comps[0], [MAX_NODES])
    if cf.name != "VCALENDAR":
        raise FilterError("valid-filter", "the top comp-filter must name VCALENDAR")
    return cf


# -- planning -------------------------------------------------------------------------------------

@dataclass
class Plan:
    component: str | None          # SQL: o.component = ?
    time_range: TimeRange | None   # SQL: the instance index
    needs_eval: bool               # anything else to check on the parsed object
    impossible: bool = False


def plan(cf: CompFilter | None) -> Plan:
    if cf is None:
        return Plan(None, None, False)
    if cf.is_not_defined:
        return Plan(None, None, False, impossible=True)
    rest = bool(cf.props or cf.time_range or cf.anyof)
    if len(cf.comps) != 1:
        return Plan(None, None, bool(cf.comps) or rest)
    inner = cf.comps[0]
    if inner.is_not_defined:
        return Plan(None, None, True)
    needs = rest or bool(inner.props or inner.comps or inner.anyof)
    return Plan(inner.name, inner.time_range, needs)


# -- evaluation -----------------------------------------------------------------------------------

def matches(cf: CompFilter | None, cal: Any, offset: int = 0) -> bool:
    if cf is None:
        return True
    return _comp_ok(cf, [cal], offset, None)


def _comp_ok(cf: CompFilter, candidates: list[Any], offset: int, parent: Any) -> bool:
    if cf.is_not_defined:
        return not candidates
    if not candidates:
        return False
    if cf.time_range is not None:
        candidates = _in_range(cf, candidates, offset, parent)
    for comp in candidates:
        tests = [_prop_ok(pf, comp, offset) for pf in cf.props] + \
                [_comp_ok(sub, [s for s in comp.subcomponents if s.name == sub.name], offset, comp) for sub in cf.comps]
        if not tests or (any(tests) if cf.anyof else all(tests)):
            return True
    return False


def _in_range(cf: CompFilter, comps: list[Any], offset: int, parent: Any) -> list[Any]:
    tr = cf.time_range
    assert tr is not None
    if cf.name in recurrence.TIMED:
        hits, certain = recurrence.between(comps, tr.start, tr.end, offset)
        if not certain:
            return comps  # undecidable within bounds: let the client decide
        keep = {id(i.component) for i in hits}
        return [comp for comp in comps if id(comp) in keep]
    if cf.name == "VALARM" and parent is not None:
        return [a for a in comps if _alarm_in_range(a, parent, tr, offset)]
    if cf.name == "VFREEBUSY":
        return [fb for fb in comps if _plain_range(fb, tr, offset)]
    return [comp for comp in comps if _plain_range(comp, tr, offset)]


def _plain_range(comp: Any, tr: TimeRange, offset: int) -> bool:
    start = comp.get("DTSTART")
    if start is None:
        return False
    end = comp.get("DTEND")
    s = epoch(start.dt) - (offset if recurrence.is_floating(start.dt) else 0)
    e = (epoch(end.dt) - (offset if recurrence.is_floating(end.dt) else 0)) if end is not None else s + 1
    return s < tr.end and max(e, s + 1) > tr.start


def _alarm_in_range(alarm: Any, parent: Any, tr: TimeRange, offset: int) -> bool:
    """RFC 4791 §9.9 for VALARM: any trigger (and repetition) of any instance in range."""
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return False
    value = trigger.dt
    repeat = int(alarm.get("REPEAT", 0) or 0)
    gap = alarm.get("DURATION")
    step = int(gap.dt.total_seconds()) if gap is not None and isinstance(gap.dt, timedelta) else 0
    extra = [k * step for k in range(min(repeat, 1000) + 1)] if step else [0]
    if isinstance(value, (datetime, date)):
        t = epoch(value)
        return any(tr.start <= t + d < tr.end for d in extra)
    off = int(value.total_seconds())
    related_end = str(trigger.params.get("RELATED", "START")).upper() == "END"
    span = extra[-1]
    instances, certain = recurrence.between([parent], tr.start - off - span - 366 * 86400,
                                            tr.end - off + 366 * 86400, offset)
    for inst in instances:
        base = (inst.end if related_end else inst.start) - (offset if inst.floating else 0)
        if any(tr.start <= base + off + d < tr.end for d in extra):
            return True
    return not certain  # undecidable within the budget: let the client decide (as _in_range does)


def _values(comp: Any, name: str) -> list[Any]:
    value = comp.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def prop_text(value: Any) -> str:
    if isinstance(value, str):
        return str(value)
    cats = getattr(value, "cats", None)
    if cats is not None:
        return ",".join(str(x) for x in cats)
    try:
        raw = value.to_ical()
    except Exception:
        return str(value)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _prop_ok(pf: PropFilter, comp: Any, offset: int) -> bool:
    values = _values(comp, pf.name)
    if pf.is_not_defined:
        return not values
    if not values:
        return False
    for value in values:
        tests = []
        if pf.time_range is not None:
            dt = getattr(value, "dt", None)
            if isinstance(dt, (date, datetime)):
                t = epoch(dt) - (offset if recurrence.is_floating(dt) else 0)
                tests.append(pf.time_range.start <= t < pf.time_range.end)
            else:
                tests.append(False)
        if pf.text_match is not None:
            tests.append(pf.text_match.test(prop_text(value)))
        for param in pf.params:
            pvalue = getattr(value, "params", {}).get(param.name)
            if param.is_not_defined:
                tests.append(pvalue is None)
            elif pvalue is None:
                tests.append(False)
            else:
                texts = pvalue if isinstance(pvalue, list) else [pvalue]
                tests.append(param.text_match is None or any(param.text_match.test(str(t)) for t in texts))
        if not tests or (any(tests) if pf.anyof else all(tests)):
            return True
    return False
