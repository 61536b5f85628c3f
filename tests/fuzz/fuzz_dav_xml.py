"""atheris target: DAV XML request bodies through the real HTTP site (PROPFIND, PROPPATCH, LOCK,
REPORT incl. CalDAV calendar-query / multiget / free-busy / sync-collection, MKCALENDAR, MKCOL).

Input: a method byte, a path byte, a Depth byte, then the XML body. Files (TauCloud) and
calendars (TauCalendar) are installed on one in-process SQLite registry holding one calendar
with a recurring event and one file. A crash is any 500 (or logged failure).

Run: ``.venv/bin/python tests/fuzz/fuzz_dav_xml.py -max_total_time=600``
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).parent))
import _common  # noqa: E402

with atheris.instrument_imports(include=["tau"]):
    from tau.calendar import service as calendar_service
    from tau.files import service as files_service
    from tau.http import service as http_service
    from tests.support.calendars import Host, ics
    from tests.support.harness import add_user
    from tests.support.http import FakeHttpClient

ALICE = "alice@example.test"
PASSWORD = "secret-Pa55"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()}
CAL = f"/dav/calendars/{ALICE}/calendar/"
METHODS = ["PROPFIND", "PROPPATCH", "LOCK", "REPORT", "MKCALENDAR", "MKCOL", "UNLOCK", "REPORT"]
PATHS = [CAL, CAL + "event.ics", f"/dav/files/{ALICE}/", f"/dav/files/{ALICE}/f.txt", f"/dav/principals/{ALICE}/",
         f"/dav/calendars/{ALICE}/", "/dav/", f"/dav/calendars/{ALICE}/new/", f"/dav/files/{ALICE}/new/"]
DEPTHS = ["0", "1", "infinity", None]
RESET_EVERY = 3000
_state: dict[str, Any] = {}


def setup() -> None:
    old = _state.get("registry")
    if old is not None:
        old.db.close()
    registry = _common.new_registry()
    host = Host(registry)
    http_service.install(registry, host)
    files_service.install(registry, host)
    calendar_service.install(registry, host)
    add_user(registry, ALICE, PASSWORD, fast_hash=True)
    client = FakeHttpClient(host.http.site)
    event = ics("e1", extra="RRULE:FREQ=WEEKLY;COUNT=10\nBEGIN:VALARM\nTRIGGER:-PT15M\nACTION:DISPLAY\n"
                             "DESCRIPTION:x\nEND:VALARM")
    for path, body in ((CAL + "event.ics", event.encode()), (f"/dav/files/{ALICE}/f.txt", b"hello")):
        r = client.request("PUT", path, body, headers=AUTH)
        assert r.status == 201, (path, r.status, r.body)
    _state.update(registry=registry, client=client, n=0)


def one_input(data: bytes) -> None:
    _state["n"] += 1
    if _state["n"] % RESET_EVERY == 0:
        setup()
    head, body = _common.header(data, 3)
    method, path, depth = METHODS[head[0] % len(METHODS)], PATHS[head[1] % len(PATHS)], DEPTHS[head[2] % len(DEPTHS)]
    headers = {**AUTH, "Content-Type": "application/xml; charset=utf-8"}
    if depth is not None:
        headers["Depth"] = depth
    if method == "UNLOCK":
        headers["Lock-Token"] = "<" + body[:60].decode("latin-1").replace("\r", "").replace("\n", "") + ">"
    r = _state["client"].request(method, path, body, headers=headers)
    if r.status >= 500 and r.status not in (503, 507):
        _common.check_logged()
        raise AssertionError(f"{method} {path}: {r.status} {r.body[:300]!r}")


def _seed(method: str, path: int, depth: int, xml: str) -> bytes:
    return bytes([METHODS.index(method), path, depth]) + xml.encode()


NS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'
TR = '<C:time-range start="20240101T000000Z" end="20250101T000000Z"/>'
SEEDS = [
    _seed("PROPFIND", 0, 1, f'<D:propfind {NS}><D:prop><D:getetag/><D:resourcetype/><C:calendar-data/>'
                            "<C:supported-calendar-component-set/><D:sync-token/></D:prop></D:propfind>"),
    _seed("PROPFIND", 2, 1, '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/><include><quota-used-bytes/>'
                            "</include></propfind>"),
    _seed("PROPFIND", 4, 0, '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'),
    _seed("PROPPATCH", 0, 3, f'<D:propertyupdate {NS} xmlns:x="urn:x"><D:set><D:prop><D:displayname>Work'
                             "</D:displayname><x:color a=\"1\"><x:i>#ff0000</x:i></x:color></D:prop></D:set>"
                             "<D:remove><D:prop><x:gone/></D:prop></D:remove></D:propertyupdate>"),
    _seed("PROPPATCH", 3, 3, '<propertyupdate xmlns="DAV:"><set><prop><foo xmlns="">bar</foo></prop></set>'
                             "</propertyupdate>"),
    _seed("LOCK", 3, 0, '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
                        "</D:locktype><D:owner><D:href>mailto:a@example.test</D:href></D:owner></D:lockinfo>"),
    _seed("LOCK", 2, 2, '<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope><locktype><write/></locktype>'
                        "</lockinfo>"),
    _seed("REPORT", 0, 1, f"<C:calendar-query {NS}><D:prop><D:getetag/><C:calendar-data><C:expand "
                          'start="20240101T000000Z" end="20240301T000000Z"/></C:calendar-data></D:prop><C:filter>'
                          f'<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{TR}<C:prop-filter '
                          'name="SUMMARY"><C:text-match collation="i;unicode-casemap" negate-condition="yes">'
                          "xyz</C:text-match></C:prop-filter><C:comp-filter name=\"VALARM\">" + TR +
                          "</C:comp-filter></C:comp-filter></C:comp-filter></C:filter><C:timezone>BEGIN:VCALENDAR"
                          "\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n"
                          "</C:timezone></C:calendar-query>"),
    _seed("REPORT", 0, 1, f'<C:calendar-query {NS}><D:prop><C:calendar-data><C:comp name="VCALENDAR">'
                          '<C:allprop/><C:comp name="VEVENT"><C:prop name="UID"/></C:comp></C:comp>'
                          f'<C:limit-recurrence-set start="20240101T000000Z" end="20240201T000000Z"/>'
                          '</C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter '
                          'name="VTODO"><C:is-not-defined/></C:comp-filter></C:comp-filter></C:filter>'
                          "</C:calendar-query>"),
    _seed("REPORT", 0, 1, f"<C:calendar-multiget {NS}><D:prop><D:getetag/><C:calendar-data/></D:prop>"
                          f"<D:href>{CAL}event.ics</D:href><D:href>{CAL}nope.ics</D:href>"
                          "<D:href>/dav/files/x</D:href></C:calendar-multiget>"),
    _seed("REPORT", 0, 1, f"<C:free-busy-query {NS}>{TR}</C:free-busy-query>"),
    _seed("REPORT", 0, 1, '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
                          "<D:limit><D:nresults>5</D:nresults></D:limit><D:prop><D:getetag/></D:prop>"
                          "</D:sync-collection>"),
    _seed("REPORT", 4, 0, '<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/>'
                          "</D:prop><D:match>ali</D:match></D:property-search><D:prop><D:displayname/></D:prop>"
                          "</D:principal-property-search>"),
    _seed("REPORT", 4, 0, '<D:principal-search-property-set xmlns:D="DAV:"/>'),
    _seed("REPORT", 4, 0, '<D:expand-property xmlns:D="DAV:"><D:property name="calendar-home-set" '
                          'namespace="urn:ietf:params:xml:ns:caldav"><D:property name="displayname"/></D:property>'
                          "</D:expand-property>"),
    _seed("MKCALENDAR", 7, 3, f"<C:mkcalendar {NS}><D:set><D:prop><D:displayname>New</D:displayname>"
                              '<C:supported-calendar-component-set><C:comp name="VTODO"/>'
                              "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"),
    _seed("MKCOL", 8, 3, '<D:mkcol xmlns:D="DAV:"><D:set><D:prop><D:resourcetype><D:collection/></D:resourcetype>'
                         "</D:prop></D:set></D:mkcol>"),
    _seed("UNLOCK", 3, 0, "opaquelocktoken:1234"),
]


if __name__ == "__main__":
    _common.main("dav_xml", setup, one_input, SEEDS)
