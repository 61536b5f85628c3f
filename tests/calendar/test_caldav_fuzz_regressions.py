"""Inputs the atheris fuzzer (tests/fuzz/fuzz_icalendar.py, fuzz_dav_xml.py) found crashing the
iCalendar import: each goes through CalDAV PUT / REPORT or the REST API and must get the
protocol's refusal, never a 500."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.calendars import ics
from tests.support.http import assert_json_error

EXPAND = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
          '<C:calendar-data><C:expand start="20240101T000000Z" end="20240201T000000Z"/></C:calendar-data>'
          '</D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>')


def refused(r: Any) -> None:
    assert r.status in (400, 403), (r.status, r.body[:300])
    assert b"valid-calendar-data" in r.body or b"valid-calendar-object-resource" in r.body, r.body


@pytest.mark.parametrize("extra", [
    "DTSTART:20240102T090000Z",                                   # second DTSTART (master)
    "DTEND:20240105T120000Z\nDTEND:20240105T130000Z",             # two DTENDs
    "BEGIN:VALARM\nTRIGGER:-PT5M\nTRIGGER:-PT10M\nACTION:DISPLAY\nDESCRIPTION:x\nEND:VALARM",
])
def test_a_property_that_must_occur_once_twice_is_refused(cal: Any, extra: str) -> None:
    """icalendar hands a repeated DTSTART back as a list: the PUT used to be stored, and every
    REPORT with <C:expand> and GET /api/events over it was a 500 (``'list' has no attribute 'dt'``)."""
    refused(cal.put("calendar/twice.ics", ics("twice", start="20240105T100000Z", extra=extra)))
    assert cal.dav("GET", "calendar/twice.ics").status == 404
    r = cal.report("calendar/", EXPAND)
    assert r.status == 207, r.body[:300]
    r = cal.api("GET", "/api/events?from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z")
    assert r.status == 200, r.body[:300]


def test_a_repeated_dtstart_in_an_override_is_refused(cal: Any) -> None:
    override = ("BEGIN:VEVENT\nUID:ov\nDTSTAMP:20240101T000000Z\nRECURRENCE-ID:20240108T100000Z\n"
                "DTSTART:20240108T120000Z\nDTSTART:20240108T130000Z\nEND:VEVENT")
    refused(cal.put("calendar/ov.ics", ics("ov", start="20240101T100000Z", extra="RRULE:FREQ=WEEKLY;COUNT=4",
                                           more=override)))


def test_a_tzid_naming_a_tzdata_folder_is_refused(cal: Any) -> None:
    """``TZID=Europe/`` made zoneinfo open a directory: IsADirectoryError, a 500 on PUT."""
    for tzid in ("Europe/", "Europe", "America"):
        refused(cal.put("calendar/tz.ics", ics("tz", start=f";TZID={tzid}:20240105T100000", end="")))
    assert cal.put("calendar/tz.ics", ics("tz", start=";TZID=Europe/Berlin:20240105T100000", end="")).status == 201


def test_a_uid_with_control_characters_is_refused(cal: Any) -> None:
    """A bare CR in the UID was stored, and tau's own re-serialisation (expand, iTIP) turned it
    into LF: the same event under another UID."""
    body = ics("u1", summary="x").replace("UID:u1\r\n", "UID:u1\r\x00DTSTAMP:20240101T000000Z\r\n")
    refused(cal.put("calendar/cr.ics", body))


def test_rest_timezone_naming_a_tzdata_folder_is_400(cal: Any) -> None:
    """``ZoneInfo("Europe")`` opens the tzdata folder: IsADirectoryError, a 500."""
    for zone in ("Europe", "Europe/", "America"):
        r = cal.api("POST", "/api/events", {"summary": "x", "start": "2024-06-01T10:00:00", "timezone": zone})
        assert assert_json_error(r, 400, "invalid_event")["field"] == "timezone"


def test_xml_body_in_an_unknown_encoding_is_400(cal: Any) -> None:
    """``<?xml version="1.0" encoding="utf-9"?>``: expat's LookupError was a 500."""
    for method in ("PROPFIND", "REPORT", "PROPPATCH"):
        r = cal.dav(method, "calendar/", '<?xml version="1.0" encoding="utf-9"?><D:propfind xmlns:D="DAV:"/>',
                    headers={"Depth": "0", "Content-Type": "application/xml"})
        assert r.status == 400 and b"malformed XML body" in r.body, (method, r.status, r.body[:300])


@pytest.mark.parametrize("rule", ["FREQ=MINUTELY;BYSETPOS=2", "FREQ=HOURLY;BYSETPOS=-2;BYHOUR=1,2",
                                  "FREQ=DAILY;BYHOUR=1,2;BYSETPOS=3", "FREQ=WEEKLY;BYDAY=MO;BYSETPOS=2"])
def test_bysetpos_beyond_one_period_is_refused_at_once(cal: Any, rule: str) -> None:
    """A BYSETPOS no period can reach selects nothing, and dateutil walked period by period to
    the year 9999 without yielding: 16 s of CPU for the HOURLY rule, hours for MINUTELY, on one
    PUT (the per-occurrence time budget never gets a turn)."""
    started = time.monotonic()
    refused(cal.put("calendar/setpos.ics", ics("setpos", start="00010101T000000Z", end="", extra=f"RRULE:{rule}")))
    assert time.monotonic() - started < 5


def test_bysetpos_within_the_period_still_works(cal: Any) -> None:
    last_weekday = ics("lw", start="20240101T090000Z", end="20240101T100000Z",
                       extra="RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3")
    assert cal.put("calendar/lw.ics", last_weekday).status == 201
    r = cal.report("calendar/", EXPAND.replace("20240201T000000Z", "20240401T000000Z"))
    assert r.status == 207 and r.body.count(b"RECURRENCE-ID") == 4, r.body  # DTSTART + 3
    for day in (b"20240131", b"20240229", b"20240329"):
        assert day in r.body
