"""CalDAV on the WebDAV core (RFC 4791, 6578, 6638 discovery), in process, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from tests.support.calendars import ALICE, C_NS, ics

D = "{DAV:}"
C = "{" + C_NS + "}"
QUERY = """<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:prop><D:getetag/>{data}</D:prop><C:filter><C:comp-filter name="VCALENDAR">{inner}</C:comp-filter></C:filter>
</C:calendar-query>"""
MAY = 'start="20240501T000000Z" end="20240601T000000Z"'


def responses(body: bytes) -> dict[str, Any]:
    root = ET.fromstring(body)
    out = {}
    for resp in root.findall(D + "response"):
        href = resp.findtext(D + "href")
        props = {}
        for ps in resp.findall(D + "propstat"):
            if " 200 " in (ps.findtext(D + "status") or ""):
                for prop in ps.find(D + "prop"):
                    props[prop.tag] = prop
        out[href] = props if resp.find(D + "propstat") is not None else resp.findtext(D + "status")
    return out


def query(cal: Any, inner: str, data: str = "<C:calendar-data/>", path: str = "calendar/") -> dict[str, Any]:
    r = cal.report(path, QUERY.format(inner=inner, data=data))
    assert r.status == 207, r.body
    return responses(r.body)


def names(found: dict[str, Any]) -> list[str]:
    return sorted(h.rsplit("/", 1)[-1] for h in found)


def test_discovery_from_well_known_to_calendars(cal: Any) -> None:
    r = cal.client.request("PROPFIND", "/.well-known/caldav")
    assert r.status == 307 and r.header("location") == "/dav/"
    r = cal.dav("PROPFIND", "/dav/", '<propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>',
                headers={"Depth": "0"})
    principal = responses(r.body)["/dav/"][D + "current-user-principal"].findtext(D + "href")
    assert principal == f"/dav/principals/{ALICE}/"
    r = cal.dav("PROPFIND", principal, '<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop>'
                "<C:calendar-home-set/><C:calendar-user-address-set/><C:schedule-inbox-URL/>"
                "<C:schedule-outbox-URL/></prop></propfind>", headers={"Depth": "0"})
    props = responses(r.body)[principal]
    home = props[C + "calendar-home-set"].findtext(D + "href")
    assert home == f"/dav/calendars/{ALICE}/"
    assert f"mailto:{ALICE}" in [h.text for h in props[C + "calendar-user-address-set"]]
    assert props[C + "schedule-inbox-URL"].findtext(D + "href").endswith("/inbox/")
    r = cal.dav("PROPFIND", home, "", headers={"Depth": "1"})
    found = responses(r.body)
    kinds = {h: [t.tag for t in p[D + "resourcetype"]] for h, p in found.items()}
    assert C + "calendar" in kinds[home + "calendar/"] and C + "calendar" in kinds[home + "tasks/"]
    assert C + "schedule-inbox" in kinds[home + "inbox/"] and C + "schedule-outbox" in kinds[home + "outbox/"]
    comps = [c.get("name") for c in found[home + "tasks/"][C + "supported-calendar-component-set"]]
    assert comps == ["VTODO"]
    options = cal.dav("OPTIONS", home + "calendar/")
    assert "calendar-access" in options.header("dav") and "MKCALENDAR" in options.header("allow")


def test_mkcalendar_and_extended_mkcol_with_properties(cal: Any) -> None:
    body = ('<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">'
            "<D:set><D:prop><D:displayname>Work</D:displayname><C:calendar-description>Job</C:calendar-description>"
            '<A:calendar-color>#ff0000</A:calendar-color><C:supported-calendar-component-set><C:comp name="VEVENT"/>'
            "</C:supported-calendar-component-set><D:foo xmlns:D=\"urn:x\">bar</D:foo></D:prop></D:set></C:mkcalendar>")
    assert cal.dav("MKCALENDAR", "work/", body).status == 201
    assert cal.dav("MKCALENDAR", "work/", body).status == 405
    assert cal.dav("MKCALENDAR", "work/sub/", "").status in (403, 404, 409)
    r = cal.dav("PROPFIND", "work/", "", headers={"Depth": "0"})
    props = responses(r.body)[f"/dav/calendars/{ALICE}/work/"]
    assert props[D + "displayname"].text == "Work"
    assert props["{http://apple.com/ns/ical/}calendar-color"].text == "#ff0000"
    assert props["{urn:x}foo"].text == "bar"
    assert [c.get("name") for c in props[C + "supported-calendar-component-set"]] == ["VEVENT"]
    assert cal.put("work/t.ics", ics("t", component="VTODO", end="")).status == 403
    mkcol = ('<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype>'
             "<D:collection/><C:calendar/></D:resourcetype><D:displayname>Home</D:displayname></D:prop></D:set>"
             "</D:mkcol>")
    assert cal.dav("MKCOL", "home/", mkcol).status == 201
    assert cal.dav("MKCOL", "plain/", "").status == 403
    patch = ('<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Renamed</D:displayname></D:prop></D:set>'
             "</D:propertyupdate>")
    assert cal.dav("PROPPATCH", "home/", patch).status == 207
    r = cal.dav("PROPFIND", "home/", "", headers={"Depth": "0"})
    assert b"Renamed" in r.body
    assert cal.dav("DELETE", "home/").status == 204
    assert cal.dav("PROPFIND", "home/", "", headers={"Depth": "0"}).status == 404


def test_put_get_etags_and_conditional_requests(cal: Any) -> None:
    text = ics("e1")
    r = cal.put("calendar/e1.ics", text, **{"If-None-Match": "*"})
    assert r.status == 201 and r.header("etag")
    etag = r.header("etag")
    got = cal.dav("GET", "calendar/e1.ics")
    assert got.status == 200 and got.body.decode() == text and got.header("etag") == etag
    assert got.header("content-type").startswith("text/calendar")
    assert cal.put("calendar/e1.ics", text, **{"If-None-Match": "*"}).status == 412
    assert cal.put("calendar/e1.ics", ics("e1", summary="x"), **{"If-Match": '"nope"'}).status == 412
    r = cal.put("calendar/e1.ics", ics("e1", summary="changed"), **{"If-Match": etag})
    assert r.status == 204 and r.header("etag") != etag
    ctag1 = _ctag(cal)
    assert cal.dav("DELETE", "calendar/e1.ics").status == 204
    assert cal.dav("GET", "calendar/e1.ics").status == 404
    assert _ctag(cal) != ctag1


def _ctag(cal: Any) -> str:
    r = cal.dav("PROPFIND", "calendar/", '<propfind xmlns="DAV:"><prop><getctag xmlns="http://calendarserver.org/ns/"/>'
                "</prop></propfind>", headers={"Depth": "0"})
    return re.search(rb"getctag[^>]*>([^<]+)<", r.body).group(1).decode()


def _seed(cal: Any) -> None:
    weekly = ics("weekly", start=";TZID=Europe/Berlin:20240506T100000", end=";TZID=Europe/Berlin:20240506T110000",
                 summary="Standup", extra="RRULE:FREQ=WEEKLY;COUNT=10",
                 more="BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20240101T000000Z\n"
                      "RECURRENCE-ID;TZID=Europe/Berlin:20240520T100000\n"
                      "DTSTART;TZID=Europe/Berlin:20240521T140000\nDTEND;TZID=Europe/Berlin:20240521T150000\n"
                      "SUMMARY:Standup moved\nEND:VEVENT")
    assert cal.put("calendar/weekly.ics", weekly).status == 201
    assert cal.put("calendar/may.ics", ics("may", start="20240515T120000Z", end="20240515T130000Z",
                                           summary="Lunch with Bob", extra="LOCATION:Cafe")).status == 201
    assert cal.put("calendar/june.ics", ics("june", start="20240610T120000Z", end="20240610T130000Z")).status == 201
    assert cal.put("calendar/allday.ics", ics("allday", start=";VALUE=DATE:20240531", end=";VALUE=DATE:20240601",
                                              summary="Holiday")).status == 201


def test_calendar_query_time_range_uses_recurrence_overrides_and_all_day(cal: Any) -> None:
    _seed(cal)
    found = query(cal, f'<C:comp-filter name="VEVENT"><C:time-range {MAY}/></C:comp-filter>')
    assert names(found) == ["allday.ics", "may.ics", "weekly.ics"]
    # the 20 May instance moved to the 21st: a window holding only the 20th finds nothing
    found = query(cal, '<C:comp-filter name="VEVENT"><C:time-range start="20240520T000000Z" '
                       'end="20240521T000000Z"/></C:comp-filter>')
    assert names(found) == []
    found = query(cal, '<C:comp-filter name="VEVENT"><C:time-range start="20240521T120000Z" '
                       'end="20240521T130000Z"/></C:comp-filter>')
    assert names(found) == ["weekly.ics"]
    found = query(cal, '<C:comp-filter name="VEVENT"><C:time-range start="20240801T000000Z"/></C:comp-filter>')
    assert names(found) == []


def test_expand_returns_utc_instances_with_recurrence_ids(cal: Any) -> None:
    _seed(cal)
    found = query(cal, f'<C:comp-filter name="VEVENT"><C:time-range {MAY}/></C:comp-filter>',
                  f'<C:calendar-data><C:expand {MAY}/></C:calendar-data>')
    data = found[f"/dav/calendars/{ALICE}/calendar/weekly.ics"][C + "calendar-data"].text
    starts = re.findall(r"DTSTART:(\S+)", data)
    assert starts == ["20240506T080000Z", "20240513T080000Z", "20240521T120000Z", "20240527T080000Z"]
    assert "RRULE" not in data and "VTIMEZONE" not in data and data.count("RECURRENCE-ID") == 4
    assert "Standup moved" in data
    limited = query(cal, f'<C:comp-filter name="VEVENT"><C:time-range {MAY}/></C:comp-filter>',
                    '<C:calendar-data><C:limit-recurrence-set start="20240501T000000Z" end="20240515T000000Z"/>'
                    "</C:calendar-data>")
    data = limited[f"/dav/calendars/{ALICE}/calendar/weekly.ics"][C + "calendar-data"].text
    assert "RRULE" in data and "Standup moved" not in data


def test_prop_filters_text_match_and_partial_data(cal: Any) -> None:
    _seed(cal)
    inner = ('<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match>lunch</C:text-match>'
             "</C:prop-filter></C:comp-filter>")
    assert names(query(cal, inner)) == ["may.ics"]
    negated = inner.replace("<C:text-match>", '<C:text-match negate-condition="yes">')
    assert names(query(cal, negated)) == ["allday.ics", "june.ics", "weekly.ics"]
    octet = inner.replace("<C:text-match>", '<C:text-match collation="i;octet">')
    assert names(query(cal, octet)) == []
    undefined = '<C:comp-filter name="VEVENT"><C:prop-filter name="LOCATION"><C:is-not-defined/></C:prop-filter>' \
                "</C:comp-filter>"
    assert "may.ics" not in names(query(cal, undefined))
    partial = ('<C:calendar-data><C:comp name="VCALENDAR"><C:prop name="VERSION"/><C:comp name="VEVENT">'
               '<C:prop name="SUMMARY"/><C:prop name="UID"/></C:comp></C:comp></C:calendar-data>')
    data = query(cal, inner, partial)[f"/dav/calendars/{ALICE}/calendar/may.ics"][C + "calendar-data"].text
    assert "SUMMARY:Lunch with Bob" in data and "LOCATION" not in data and "DTSTART" not in data
    r = cal.report("calendar/", QUERY.format(inner=inner.replace("<C:text-match>",
                                                                 '<C:text-match collation="x;unknown">'), data=""))
    assert r.status == 403 and b"supported-collation" in r.body


def test_todos_and_multiget(cal: Any) -> None:
    assert cal.put("tasks/t1.ics", ics("t1", start="", end="20240510T100000Z", component="VTODO",
                                       summary="file taxes")).status == 201
    assert cal.put("tasks/t2.ics", ics("t2", start="", end="", component="VTODO", summary="someday")).status == 201
    assert cal.put("tasks/e.ics", ics("e")).status == 403  # the task list takes VTODO only
    found = query(cal, f'<C:comp-filter name="VTODO"><C:time-range {MAY}/></C:comp-filter>', path="tasks/")
    assert names(found) == ["t1.ics", "t2.ics"]
    body = ('<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
            f"<C:calendar-data/></D:prop><D:href>/dav/calendars/{ALICE}/tasks/t1.ics</D:href>"
            f"<D:href>/dav/calendars/{ALICE}/tasks/missing.ics</D:href>"
            f"<D:href>/dav/calendars/{ALICE}/calendar/other.ics</D:href></C:calendar-multiget>")
    found = responses(cal.report("tasks/", body).body)
    assert "file taxes" in found[f"/dav/calendars/{ALICE}/tasks/t1.ics"][C + "calendar-data"].text
    assert "404" in found[f"/dav/calendars/{ALICE}/tasks/missing.ics"]
    assert "404" in found[f"/dav/calendars/{ALICE}/calendar/other.ics"]


def _sync(cal: Any, token: str = "") -> tuple[str, dict[str, Any]]:
    body = ('<D:sync-collection xmlns:D="DAV:"><D:sync-token>' + token + "</D:sync-token><D:sync-level>1"
            "</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")
    r = cal.report("calendar/", body)
    assert r.status == 207, r.body
    root = ET.fromstring(r.body)
    return root.findtext(D + "sync-token"), responses(r.body)


def test_sync_collection_reports_changes_and_deletions(cal: Any) -> None:
    _seed(cal)
    token, found = _sync(cal)
    assert names(found) == ["allday.ics", "june.ics", "may.ics", "weekly.ics"]
    assert cal.put("calendar/may.ics", ics("may", summary="moved lunch")).status == 204
    assert cal.dav("DELETE", "calendar/june.ics").status == 204
    assert cal.put("calendar/new.ics", ics("new")).status == 201
    token2, found = _sync(cal, token)
    assert names(found) == ["june.ics", "may.ics", "new.ics"]
    assert "404" in found[f"/dav/calendars/{ALICE}/calendar/june.ics"]
    assert _sync(cal, token2)[1] == {}
    r = cal.report("calendar/", '<D:sync-collection xmlns:D="DAV:"><D:sync-token>urn:tau:calendar:sync:1-999'
                                "</D:sync-token><D:prop/></D:sync-collection>")
    assert r.status == 403 and b"valid-sync-token" in r.body


def test_free_busy_report_and_outbox_lookup(cal: Any) -> None:
    _seed(cal)
    assert cal.put("calendar/free.ics", ics("free", start="20240515T150000Z", end="20240515T160000Z",
                                            extra="TRANSP:TRANSPARENT")).status == 201
    r = cal.report("calendar/", '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range '
                                'start="20240515T000000Z" end="20240516T000000Z"/></C:free-busy-query>')
    assert r.status == 200 and r.header("content-type").startswith("text/calendar")
    assert re.findall(r"FREEBUSY;FBTYPE=BUSY:(\S+)", r.body.decode()) == ["20240515T120000Z/20240515T130000Z"]
    request = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\n"
               "DTSTAMP:20240101T000000Z\r\nDTSTART:20240515T000000Z\r\nDTEND:20240516T000000Z\r\n"
               f"ORGANIZER:mailto:bob@example.test\r\nATTENDEE:mailto:{ALICE}\r\nATTENDEE:mailto:x@nowhere.test\r\n"
               "END:VFREEBUSY\r\nEND:VCALENDAR\r\n")
    r = cal.dav("POST", "/dav/calendars/bob@example.test/outbox/", request, user="bob@example.test",
                headers={"Content-Type": "text/calendar"})
    assert r.status == 200, r.body
    assert b"2.0;Success" in r.body and b"3.7;" in r.body and b"20240515T120000Z/20240515T130000Z" in r.body
    r = cal.dav("POST", f"/dav/calendars/{ALICE}/outbox/", request, headers={"Content-Type": "text/calendar"})
    assert r.status == 403  # alice is not the organizer of bob's request
