"""Recurrence expansion and index rows (RFC 5545 §3.8.5, RFC 4791 §9.9): no database needed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tau.calendar import recurrence
from tau.calendar.ical import InvalidObject, parse_object
from tests.support.calendars import ics


def utc(text: str) -> int:
    return int(datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp())


def starts(rows: list) -> list[str]:
    return [datetime.fromtimestamp(r.start, UTC).strftime("%Y%m%dT%H%M%SZ") for r in rows]


WEEKLY_BERLIN = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20240314T100000\r\nDTEND;TZID=Europe/Berlin:20240314T110000\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=5\r\nEXDATE;TZID=Europe/Berlin:20240328T100000\r\nSUMMARY:w\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240404T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20240405T150000\r\nDTEND;TZID=Europe/Berlin:20240405T160000\r\n"
    "SUMMARY:moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_weekly_rule_keeps_wall_clock_time_across_dst_with_exdate_and_override() -> None:
    parsed = parse_object(WEEKLY_BERLIN)
    # CET (+1) until 31 March, CEST (+2) after: 10:00 local is 09:00Z then 08:00Z
    assert starts(parsed.rows) == ["20240314T090000Z", "20240321T090000Z", "20240405T130000Z", "20240411T080000Z"]
    assert [r.recurrence_id for r in parsed.rows][2] == "20240404T080000Z"
    assert parsed.indexed_until is None


def test_all_day_and_floating_values_are_marked_floating() -> None:
    parsed = parse_object(ics("d", start=";VALUE=DATE:20240501", end=";VALUE=DATE:20240503"))
    assert len(parsed.rows) == 1 and parsed.rows[0].floating
    assert parsed.rows[0].end - parsed.rows[0].start == 2 * 86400
    floating = parse_object(ics("f", start="20240501T100000", end="20240501T110000"))
    assert floating.rows[0].floating and starts(floating.rows) == ["20240501T100000Z"]


def test_rdate_periods_and_instants() -> None:
    parsed = parse_object(ics("r", end="", extra="RDATE;VALUE=PERIOD:20240510T100000Z/20240510T120000Z\n"
                                               "RDATE:20240512T100000Z"))
    assert starts(parsed.rows) == ["20240506T100000Z", "20240510T100000Z", "20240512T100000Z"]
    lengths = [r.end - r.start for r in parsed.rows]
    assert lengths == [1, 7200, 1]  # an instant is one second wide, a PERIOD keeps its length


def test_unbounded_rule_is_indexed_to_a_horizon_and_expanded_on_demand() -> None:
    parsed = parse_object(ics("u", extra="RRULE:FREQ=MINUTELY"))
    assert 0 < len(parsed.rows) <= 3000 and parsed.indexed_until is not None
    started = time.monotonic()
    far = utc("20300101T000000Z")
    hits, certain = recurrence.between(parsed.components, far, far + 3600)
    assert certain and len(hits) == 60 + 59  # one-hour events every minute overlapping the hour
    assert time.monotonic() - started < 2


def test_rules_dateutil_would_walk_to_year_9999_are_cut_short_or_refused() -> None:
    started = time.monotonic()
    never = parse_object(ics("n", extra="RRULE:FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=31"))
    assert len(never.rows) == 1 and never.indexed_until is None  # only DTSTART: the rule never matches
    hits, certain = recurrence.between(never.components, utc("20900601T000000Z"), utc("20900602T000000Z"))
    assert hits == [] and certain
    with pytest.raises(InvalidObject):
        parse_object(ics("s", extra="RRULE:FREQ=SECONDLY;BYMONTH=12;BYMONTHDAY=31;BYHOUR=23"))
    leap = parse_object(ics("l", extra="RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;COUNT=3"))
    assert starts(recurrence.expand(leap.components).instances)[1:3] == ["20280229T100000Z", "20320229T100000Z"]
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("component,extra,window,expected", [
    ("VTODO", "", ("20200101T000000Z", "20200102T000000Z"), True),           # no dates: any range
    ("VTODO", "DUE:20240510T100000Z", ("20240510T090000Z", "20240510T100000Z"), True),
    ("VTODO", "DUE:20240510T100000Z", ("20240510T100001Z", "20240511T000000Z"), False),
    ("VJOURNAL", "DTSTART;VALUE=DATE:20240510", ("20240510T120000Z", "20240510T130000Z"), True),
])
def test_time_range_semantics_of_todos_and_journals(component: str, extra: str, window: tuple[str, str],
                                                     expected: bool) -> None:
    parsed = parse_object(ics("t", start="", end="", component=component, extra=extra))
    s, e = utc(window[0]), utc(window[1])
    assert any(r.start < e and r.end > s for r in parsed.rows) is expected


@pytest.mark.parametrize("text,condition", [
    ("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "valid-calendar-object-resource"),
    ("not ical at all", "valid-calendar-data"),
    (ics("x", start="garbage"), "valid-calendar-data"),
    (ics("x", extra="RRULE:FREQ=SOMETIMES"), "valid-calendar-data"),
    (ics("x", more="BEGIN:VEVENT\nUID:y\nDTSTART:20240101T000000Z\nEND:VEVENT"),
     "valid-calendar-object-resource"),
    (ics("x", more="BEGIN:VTODO\nUID:x\nEND:VTODO"), "valid-calendar-object-resource"),
    (ics("x", component="VAVAILABILITY"), "supported-calendar-component"),
    (ics("", ), "valid-calendar-object-resource"),
    ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n", "valid-calendar-data"),
])
def test_invalid_objects_name_their_precondition(text: str, condition: str) -> None:
    with pytest.raises(InvalidObject) as err:
        parse_object(text)
    assert err.value.condition == condition


def test_the_index_horizon_is_extended_by_maintenance(cal) -> None:  # type: ignore[no-untyped-def]
    from tau.calendar import maintenance, objects
    from tests.support.harness import resolve

    assert cal.put("calendar/birthday.ics", ics("bday", start=";VALUE=DATE:20000301", end="",
                                                extra="RRULE:FREQ=YEARLY")).status == 201
    db = cal.registry.db.sync
    (object_id, until), = db.run("t", lambda txn: txn.query("SELECT id, indexed_until FROM cal_objects"))
    assert until is not None
    db.run("t", lambda txn: txn.execute("UPDATE cal_objects SET indexed_until = ? WHERE id = ?",
                                        (until - 5 * 366 * 86400, object_id)))
    db.run("t", lambda txn: txn.execute("DELETE FROM cal_instances WHERE start_utc > ?", (until - 5 * 366 * 86400,)))
    assert resolve(maintenance.extend_index(cal.registry)) == 1
    row = db.run("t", objects.by_id, object_id)
    assert row.indexed_until == until
    assert resolve(maintenance.extend_index(cal.registry)) == 0
