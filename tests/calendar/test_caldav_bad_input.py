"""Hostile and broken input (issue 6, Bad input), and a second user who must see nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.calendars import ALICE, BOB, ics

QUERY = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
         '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
         '<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>')


@pytest.mark.parametrize("body", [
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:yesterday\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n",
    "hello world",
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
    ics("a", more="BEGIN:VEVENT\nUID:b\nDTSTART:20240101T000000Z\nEND:VEVENT"),
])
def test_malformed_icalendar_is_refused_with_a_precondition(cal: Any, body: str) -> None:
    r = cal.put("calendar/bad.ics", body)
    assert r.status in (400, 403), r.body
    assert b"valid-calendar-data" in r.body or b"valid-calendar-object-resource" in r.body
    assert cal.dav("GET", "calendar/bad.ics").status == 404
    r = cal.put("calendar/bad.ics", b"\xff\xfe not utf-8".decode("latin-1").encode("latin-1") + b"\xff")
    assert r.status in (400, 403)


def test_unbounded_rule_queries_are_bounded(cal: Any) -> None:
    endless = ics("endless", extra="RRULE:FREQ=MINUTELY")
    started = time.monotonic()
    assert cal.put("calendar/endless.ics", endless).status == 201
    assert cal.put("calendar/daily.ics", ics("daily", extra="RRULE:FREQ=DAILY")).status == 201
    for start, end in (("20240506T000000Z", "20240507T000000Z"), ("20330101T000000Z", "20330201T000000Z"),
                       ("00010101T000000Z", "99991231T235959Z")):
        r = cal.report("calendar/", QUERY.format(start=start, end=end))
        assert r.status == 207 and b"endless.ics" in r.body and b"daily.ics" in r.body
    r = cal.report("calendar/", QUERY.format(start="20240506T000000Z", end="20240507T000000Z").replace(
        "<C:calendar-data/>", '<C:calendar-data><C:expand start="20240506T000000Z" end="20240507T000000Z"/>'
                              "</C:calendar-data>"))
    assert r.status == 207 and r.body.count(b"RECURRENCE-ID") == 14 * 60 + 1  # 10:00-23:59 each minute, daily
    r = cal.report("calendar/", QUERY.format(start="20240101T000000Z", end="20250101T000000Z").replace(
        "<C:calendar-data/>", '<C:calendar-data><C:expand start="20240101T000000Z" end="20250101T000000Z"/>'
                              "</C:calendar-data>"))
    assert r.status == 403 and b"number-of-matches-within-limits" in r.body
    r = cal.api("GET", "/api/events?from=2033-01-01T00:00:00Z&to=2033-01-02T00:00:00Z&limit=5")
    assert r.status == 200 and len(r.json()["items"]) == 5 and r.json()["next_cursor"]
    assert time.monotonic() - started < 20


def test_huge_vcalendar_is_refused_before_it_is_parsed(cal: Any) -> None:
    big = ics("big", extra="DESCRIPTION:" + "x" * (2 * 1024 * 1024))
    r = cal.put("calendar/big.ics", big)
    assert r.status in (403, 413) and (r.status == 413 or b"max-resource-size" in r.body)
    many = "".join(f"BEGIN:VEVENT\nUID:m\nRECURRENCE-ID:2024{i % 12 + 1:02d}01T{i % 24:02d}0000Z\n"
                   f"DTSTART:20240101T000000Z\nEND:VEVENT\n" for i in range(3000))
    r = cal.put("calendar/many.ics", ics("m", more=many))
    assert r.status in (400, 403)
    assert cal.client.request("PUT", f"/dav/calendars/{ALICE}/calendar/huge.ics", b"x" * (20 * 1024 * 1024),
                              headers={**cal.basic(), "Content-Type": "text/calendar"}).status == 413


def test_duplicate_uid_in_another_resource_is_no_uid_conflict(cal: Any) -> None:
    assert cal.put("calendar/one.ics", ics("same")).status == 201
    r = cal.put("calendar/two.ics", ics("same"))
    assert r.status == 403 and b"no-uid-conflict" in r.body and b"/calendar/one.ics" in r.body
    assert cal.put("calendar/one.ics", ics("same", summary="same resource, same UID")).status == 204
    assert cal.put("tasks/t.ics", ics("same", component="VTODO", end="")).status == 201  # other calendar


@pytest.mark.parametrize("start,end", [
    ("20240501", "20240601T000000Z"), ("20240501T000000", "20240601T000000Z"), ("2024-05-01T00:00:00Z", ""),
    ("20241301T000000Z", "20241401T000000Z"), ("20240601T000000Z", "20240501T000000Z"), ("garbage", "x"),
])
def test_time_range_with_invalid_dates_is_valid_filter(cal: Any, start: str, end: str) -> None:
    r = cal.report("calendar/", QUERY.format(start=start, end=end))
    assert r.status in (400, 403) and b"valid-filter" in r.body


@pytest.mark.parametrize("query", ["from=garbage", "from=2024-13-01T00:00:00Z", "to=2024-05-01T25:00:00Z",
                                   "from=2024-06-01T00:00:00Z&to=2024-05-01T00:00:00Z",
                                   "from=2024-01-01T00:00:00Z&to=2034-01-01T00:00:00Z", "from=99999-01-01"])
def test_api_ranges_with_invalid_dates(cal: Any, query: str) -> None:
    r = cal.api("GET", f"/api/events?{query}")
    assert r.status == 400 and r.json()["error"] == "invalid_range"


def test_bob_cannot_read_or_write_alices_calendar_without_a_share(cal: Any) -> None:
    assert cal.put("calendar/secret.ics", ics("secret", summary="Secret")).status == 201
    base = f"/dav/calendars/{ALICE}"
    assert cal.dav("GET", f"{base}/calendar/secret.ics", user=BOB).status == 404
    assert cal.dav("PROPFIND", f"{base}/calendar/", "", user=BOB, headers={"Depth": "1"}).status == 404
    assert cal.dav("PROPFIND", f"{base}/", "", user=BOB, headers={"Depth": "1"}).status == 403
    assert cal.dav("PROPFIND", f"/dav/principals/{ALICE}/", "", user=BOB, headers={"Depth": "0"}).status == 403
    assert cal.put(f"{base}/calendar/secret.ics", ics("secret", summary="pwned"), user=BOB).status == 404
    assert cal.put(f"{base}/calendar/new.ics", ics("new"), user=BOB).status == 404
    assert cal.dav("DELETE", f"{base}/calendar/secret.ics", user=BOB).status == 404
    assert cal.dav("MKCALENDAR", f"{base}/evil/", "", user=BOB).status in (403, 404)
    assert cal.report(f"{base}/calendar/", QUERY.format(start="20240101T000000Z", end="20250101T000000Z"),
                      user=BOB).status == 404
    items = cal.api("GET", "/api/events?from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00Z", user=BOB).json()
    assert items["items"] == []
    event_id = cal.api("GET", "/api/events?from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00Z").json()["items"][0]["id"]
    assert cal.api("GET", f"/api/events/{event_id}", user=BOB).status == 404
    assert cal.api("PATCH", f"/api/events/{event_id}", {"summary": "pwned"}, user=BOB).status == 404
    assert cal.api("DELETE", f"/api/events/{event_id}", user=BOB).status == 404
    assert b"Secret" in cal.dav("GET", "calendar/secret.ics").body


def test_shares_read_only_and_read_write(cal: Any) -> None:
    assert cal.put("calendar/shared.ics", ics("shared", summary="Team")).status == 201
    r = cal.api("PUT", f"/api/calendars/calendar/shares/{BOB}", {"permission": "read"})
    assert r.status == 200, r.body
    alias = r.json()["name"]
    home = cal.dav("PROPFIND", f"/dav/calendars/{BOB}/", "", user=BOB, headers={"Depth": "1"})
    assert f"/dav/calendars/{BOB}/{alias}/".encode() in home.body
    assert b"Team" in cal.dav("GET", f"/dav/calendars/{BOB}/{alias}/shared.ics", user=BOB).body
    assert b"Team" in cal.dav("GET", f"/dav/calendars/{ALICE}/calendar/shared.ics", user=BOB).body
    r = cal.put(f"/dav/calendars/{BOB}/{alias}/shared.ics", ics("shared", summary="changed"), user=BOB)
    assert r.status == 403 and b"need-privileges" in r.body
    assert cal.dav("DELETE", f"/dav/calendars/{BOB}/{alias}/shared.ics", user=BOB).status == 403
    assert cal.api("PUT", f"/api/calendars/calendar/shares/{BOB}", {"permission": "write"}).status == 200
    assert cal.put(f"/dav/calendars/{BOB}/{alias}/shared.ics", ics("shared", summary="Bob was here"),
                   user=BOB).status == 204
    assert b"Bob was here" in cal.dav("GET", "calendar/shared.ics").body
    assert cal.api("DELETE", f"/api/calendars/calendar/shares/{BOB}").status == 204
    assert cal.dav("GET", f"/dav/calendars/{BOB}/{alias}/shared.ics", user=BOB).status == 404
    assert cal.api("PUT", "/api/calendars/calendar/shares/nobody@example.test", {}).status == 400


BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>'
        '<C:comp-filter name="&lol3;"/></C:filter></C:calendar-query>')
XXE = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:href>&x;</D:href>'
       "</C:calendar-multiget>")


def test_xml_bombs_and_oversized_report_bodies(cal: Any) -> None:
    for body in (BOMB, XXE):
        r = cal.report("calendar/", body)
        assert r.status == 400 and b"root:" not in r.body
    deep = "<C:comp-filter name=\"VEVENT\">" * 50 + "</C:comp-filter>" * 50
    r = cal.report("calendar/", QUERY.replace('<C:comp-filter name="VEVENT"><C:time-range start="{start}" '
                                              'end="{end}"/></C:comp-filter>', deep))
    assert r.status in (400, 403)
    wide = "".join(f'<C:prop-filter name="X{i}"/>' for i in range(5000))
    r = cal.report("calendar/", QUERY.replace('<C:time-range start="{start}" end="{end}"/>', wide))
    assert r.status in (400, 403)
    r = cal.report("calendar/", "<a>" + "x" * (2 * 1024 * 1024) + "</a>")
    assert r.status == 413
    assert cal.report("calendar/", "<not-closed").status == 400
    assert cal.report("calendar/", '<D:foo xmlns:D="DAV:"/>').status == 403


def _raw_put_head(cal: Any, path: str, length: int, headers: dict[str, str]) -> Any:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    channel = cal.site.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    lines = [f"PUT {path} HTTP/1.1", "Host: localhost", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
    return channel, transport


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic YWxpY2VAZXhhbXBsZS50ZXN0Ondyb25n"}])
def test_a_put_without_valid_credentials_is_refused_before_its_body(cal: Any, headers: dict[str, str]) -> None:
    channel, transport = _raw_put_head(cal, f"/dav/calendars/{ALICE}/calendar/x.ics", 1_000_000,
                                       {"Expect": "100-continue", **headers})
    assert transport.value().startswith(b"HTTP/1.1 401 "), transport.value()[:200]
    assert b"100 Continue" not in transport.value()
    channel.dataReceived(ics("x").encode())
    assert cal.dav("GET", "calendar/x.ics").status == 404
