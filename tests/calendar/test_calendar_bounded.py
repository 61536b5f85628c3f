"""Issue 13 item 6: recurrence expansion has a budget. Sub-minute rules are refused on PUT (as
Google Calendar does); one already stored (written before the check, or by hand) must not make a
REPORT, a free-busy query or ``GET /api/events`` run away (a SECONDLY event with hundreds of alarms
took 130 s of CPU on one REPORT)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tau.calendar import ical, objects, recurrence, store
from tests.support.calendars import ALICE, ics

ALARMS = 300   # unbounded, each alarm's time-range test walked 50,000 occurrences (~0.45 s)
ALARM_QUERY = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
               '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
               '<C:comp-filter name="VALARM"><C:time-range start="20300101T000000Z" end="20300102T000000Z"/>'
               '</C:comp-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>')
EXPAND_QUERY = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
                '<C:calendar-data><C:expand start="20300101T000000Z" end="20300101T000500Z"/></C:calendar-data>'
                '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                '<C:time-range start="20300101T000000Z" end="20300101T000500Z"/></C:comp-filter></C:comp-filter>'
                '</C:filter></C:calendar-query>')
FREE_BUSY = ('<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range '
             'start="20300101T000000Z" end="20300108T000000Z"/></C:free-busy-query>')


def alarms(n: int) -> str:
    return "\n".join(f"BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:a{i}\nTRIGGER:-PT{i}M\nEND:VALARM" for i in range(n))


@pytest.mark.parametrize("rule", ["FREQ=SECONDLY", "FREQ=SECONDLY;INTERVAL=30;COUNT=10", "FREQ=MINUTELY;BYSECOND=0,30",
                                  "FREQ=SECONDLY;UNTIL=20240506T110000Z"])
def test_sub_minute_rules_are_refused_on_put(cal: Any, rule: str) -> None:
    r = cal.put("calendar/fast.ics", ics("fast", extra=f"RRULE:{rule}"))
    assert r.status == 403 and b"valid-calendar-object-resource" in r.body, r.body
    assert cal.dav("GET", "calendar/fast.ics").status == 404
    assert cal.put("calendar/ok.ics", ics("ok", extra="RRULE:FREQ=SECONDLY;INTERVAL=3600")).status == 201


def store_directly(cal: Any, name: str, text: str) -> None:
    """What an older tau (or a restore) may have stored: no PUT validation on the way in."""
    parsed_cal = ical.parse_calendar(text)
    comps = [c for c in parsed_cal.subcomponents if c.name != "VTIMEZONE"]
    parsed = ical.ParsedObject(str(comps[0]["UID"]), comps[0].name, text, parsed_cal, comps)
    ical.index(parsed)

    def put(txn: Any) -> None:
        owner = store.user_id(txn, ALICE)
        store.ensure_defaults(txn, owner)
        objects.put(txn, store.get(txn, owner, "calendar").id, name, parsed)

    cal.registry.db.sync.run("test_store_event", put)


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> float:
    """The same budgets, smaller, so the test stays fast (unbounded, each query took minutes)."""
    monkeypatch.setattr(recurrence, "WORK_SECONDS", 0.5)
    monkeypatch.setattr(recurrence, "EXPAND_SECONDS", 0.25)
    return 3 * 0.5 + 4   # at most three budgeted steps per request, plus slack for a loaded machine


def test_a_stored_secondly_event_with_many_alarms_cannot_make_queries_run_away(cal: Any, small_budget: float) -> None:
    store_directly(cal, "secondly.ics", ics("secondly", extra="RRULE:FREQ=SECONDLY\n" + alarms(ALARMS)))
    store_directly(cal, "weekly.ics", ics("weekly", start="20291231T090000Z", end="20291231T100000Z",
                                          extra="RRULE:FREQ=WEEKLY\n" + alarms(1)))
    limit = small_budget
    r, took = timed(lambda: cal.report("calendar/", ALARM_QUERY))
    assert r.status == 207 and b"weekly.ics" in r.body and took < limit, (r.status, took)
    r, took = timed(lambda: cal.report("calendar/", EXPAND_QUERY))
    assert r.status in (207, 403) and took < limit, (r.status, took)
    if r.status == 403:
        assert b"number-of-matches-within-limits" in r.body
    r, took = timed(lambda: cal.report("calendar/", FREE_BUSY))
    assert r.status == 200 and took < limit, (r.status, took)
    r, took = timed(lambda: cal.api("GET", "/api/events?from=2030-01-01T00:00:00Z&to=2030-01-08T00:00:00Z&limit=5"))
    assert r.status == 200 and took < limit, (r.status, took)
    assert cal.report("calendar/", ALARM_QUERY.replace("VALARM", "VTODO")).status == 207


def test_a_minutely_event_with_many_alarms_is_accepted_and_bounded(cal: Any, small_budget: float) -> None:
    minutely = ics("minutely", extra="RRULE:FREQ=MINUTELY\n" + alarms(ALARMS))
    assert cal.put("calendar/minutely.ics", minutely).status == 201
    r, took = timed(lambda: cal.report("calendar/", ALARM_QUERY))
    assert r.status == 207 and b"minutely.ics" in r.body  # undecidable in the budget: the client decides
    assert took < small_budget, took


def test_the_work_budget_cuts_expansion_short() -> None:
    parsed = ical.parse_calendar(ics("m", extra="RRULE:FREQ=MINUTELY"))
    comps = [c for c in parsed.subcomponents if c.name == "VEVENT"]
    with recurrence.work_budget(0):
        result = recurrence.expand(comps, limit=10**9)
    assert not result.complete and len(result.instances) <= 2
    hits, certain = recurrence.between(comps, 0, recurrence.MAX_TS)
    assert not certain and hits
