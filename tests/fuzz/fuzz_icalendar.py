"""atheris target: iCalendar import — validation and indexing (``ical.parse_object``, what a CalDAV
PUT or REST import runs), then what reports and the REST API do with a stored object: expansion
and limit-recurrence-set over a bounded window (``caldata.render``), time-range filters
(``filters.matches``), instance lists (``recurrence.between`` + ``events.item``), iTIP helpers and a
serialise/re-parse round trip. Pure functions, no database.

Input: a window byte, an offset byte, then the iCalendar text. Allowed errors are the ones the
callers turn into protocol answers: ``InvalidObject`` (403/400 precondition), ``TooMany`` (403
number-of-matches-within-limits), ``FilterError``, and ``ValueError`` from rendering (reports fall
back to the stored text). Anything else, or more than ``-timeout`` seconds, is a crash.
tau has no vCard parser (CardDAV is only a ``.well-known`` redirect), so there is no vCard target.

Run: ``.venv/bin/python tests/fuzz/fuzz_icalendar.py -max_total_time=600``
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))
import _common  # noqa: E402

with atheris.instrument_imports(include=["tau", "icalendar", "dateutil"]):
    from tau.calendar import caldata, events, filters, ical, itip, recurrence
    from tau.calendar.caldata import CompSelect, DataRequest, TooMany
    from tau.calendar.filters import CompFilter, FilterError, TimeRange
    from tau.calendar.ical import InvalidObject

NOW = 1_714_000_000  # 2024-04-24: fixed, so an input means the same thing on every run
WINDOWS = [(1_704_067_200, 1_706_745_600),       # January 2024
           (1_704_067_200, 1_735_689_600),       # 2024
           (0, 86_400 * 3),                      # the epoch
           (253_370_764_800, 253_402_300_799),   # 9999
           (-62_135_596_800, -62_104_060_800)]   # year 1
OFFSETS = [0, 14 * 3600, -12 * 3600, 5 * 3600 + 1800]


def _filter(start: int, end: int) -> CompFilter:
    tr = TimeRange(start, end)
    return CompFilter("VCALENDAR", comps=[CompFilter("VEVENT", time_range=tr), CompFilter("VTODO", time_range=tr)],
                      anyof=True)


def one_input(data: bytes) -> None:
    head, body = _common.header(data, 2)
    start, end = WINDOWS[head[0] % len(WINDOWS)]
    offset = OFFSETS[head[1] % len(OFFSETS)]
    try:
        parsed = ical.parse_object(body, now=NOW)
    except InvalidObject:
        return
    window = TimeRange(start, end)
    select = CompSelect("VCALENDAR", allprop=True, allcomp=False,
                        comps=[CompSelect(parsed.component, allprop=False, props={"UID", "DTSTART"})])
    for req in (DataRequest(expand=window), DataRequest(limit_recurrence=window, limit_freebusy=window),
                DataRequest(select=select)):
        try:
            caldata.render(parsed.text, req, offset)
        except (InvalidObject, TooMany, ValueError):
            pass
    try:
        filters.matches(_filter(start, end), parsed.calendar, offset)
    except FilterError:
        pass
    hits, _ = recurrence.between(parsed.components, start, end, offset)
    recurring = recurrence.recurs(parsed.components)
    for inst in hits[:50]:
        events.item(1, "calendar", inst, recurring)
    itip.organizer_of(parsed.calendar)
    itip.attendees(parsed.calendar)
    itip.sequence(parsed.calendar)
    itip.request(parsed.calendar)
    itip.cancel(parsed.calendar, now=NOW)
    try:
        again = ical.parse_object(ical.serialize(parsed.calendar), now=NOW)
    except InvalidObject as exc:
        raise AssertionError(f"tau's own serialisation does not parse again: {exc.message}") from None
    if again.uid != parsed.uid:
        raise AssertionError("UID changed in a round trip")


def _seed(window: int, offset: int, text: str) -> bytes:
    return bytes([window, offset]) + text.replace("\n", "\r\n").encode()


EV = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fuzz//EN\n{tz}BEGIN:{kind}\nUID:{uid}\nDTSTAMP:20240101T000000Z\n"
      "{body}\nEND:{kind}\n{more}END:VCALENDAR\n")
TZ = ("BEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\nRRULE:FREQ=YEARLY;BYMONTH=10;"
      "BYDAY=-1SU\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:19700329T020000\n"
      "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nEND:VTIMEZONE\n")


def _ev(body: str, kind: str = "VEVENT", tz: str = "", more: str = "", uid: str = "u1") -> str:
    return EV.format(tz=tz, kind=kind, uid=uid, body=body, more=more)


SEEDS = [_seed(w, o, t) for w, o, t in [
    (0, 0, _ev("DTSTART:20240105T100000Z\nDTEND:20240105T110000Z\nSUMMARY:one")),
    (1, 1, _ev("DTSTART;TZID=Europe/Berlin:20240105T100000\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=20\n"
               "EXDATE;TZID=Europe/Berlin:20240110T100000\nRDATE;VALUE=PERIOD:20240120T100000Z/PT2H", tz=TZ,
               more="BEGIN:VEVENT\nUID:u1\nDTSTAMP:20240101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:"
                    "20240108T100000\nDTSTART;TZID=Europe/Berlin:20240108T120000\nSUMMARY:moved\nEND:VEVENT\n")),
    (0, 2, _ev("DTSTART;VALUE=DATE:20240101\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1;UNTIL=20241231")),
    (0, 0, _ev("DTSTART:20240101T090000\nRRULE:FREQ=MINUTELY;INTERVAL=15\nBEGIN:VALARM\nTRIGGER;RELATED=END:-PT5M\n"
               "ACTION:DISPLAY\nDESCRIPTION:x\nEND:VALARM")),
    (1, 0, _ev("DTSTART:20240101T090000Z\nDUE:20240102T090000Z\nSTATUS:COMPLETED\nRRULE:FREQ=YEARLY;BYWEEKNO=1,-1;"
               "BYDAY=TH", kind="VTODO")),
    (3, 0, _ev("DTSTART:99991230T000000Z\nRRULE:FREQ=DAILY")),
    (4, 0, _ev("DTSTART:00010101T000000Z\nRRULE:FREQ=HOURLY;BYSETPOS=-1;BYHOUR=1,2")),
    (2, 3, _ev("DTSTART:19700101T000000Z\nRRULE:FREQ=SECONDLY;COUNT=10\nORGANIZER;CN=Bob:mailto:bob@example.test\n"
               "ATTENDEE;PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:alice@example.test\nSEQUENCE:3")),
    (1, 0, _ev("DTSTART:20240101\nSUMMARY:journal", kind="VJOURNAL")),
    (1, 0, "BEGIN:VCALENDAR\nVERSION:2.0\nMETHOD:REPLY\nBEGIN:VFREEBUSY\nUID:f\nFREEBUSY:20240101T000000Z/PT1H\n"
           "END:VFREEBUSY\nEND:VCALENDAR\n"),
    (0, 0, _ev("DTSTART:20240105T100000Z\nDESCRIPTION;LANGUAGE=de:Zeile\\, mit\\nUmbruch\n  weiter\n"
               "X-CUSTOM;X-P=\"a:b\":v\nGEO:1.5;2.5\nCATEGORIES:a,b\nATTACH;ENCODING=BASE64;VALUE=BINARY:aGk=")),
]]


if __name__ == "__main__":
    _common.main("icalendar", lambda: None, one_input, SEEDS)
