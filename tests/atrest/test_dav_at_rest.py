"""Issue 16, acceptance for calendars, contacts, files and the messenger: what users wrote through
CalDAV, CardDAV, WebDAV, the REST APIs and the messenger is nowhere in the stored bytes — not in
the SQLite file or its WAL (or anything else under the data dir), not in a ``pg_dump``, not in a
``tau backup`` archive — and still reads back through the same protocols."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import engines
from tests.support.atrest import archive_bytes, leaks, marker, pg_dump_bytes, tree_bytes
from tests.support.daemon import TauDaemon

ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORD = "secret-Pa55"
KINDS = ("calseg", "calname", "caldesc", "evname", "evuid", "summary", "bookname", "cardname", "carduid", "fn",
         "email", "folder", "file", "content", "restfolder", "title", "retitle", "body", "attach", "deadprop")


def ics(uid: str, summary: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN", "BEGIN:VEVENT", f"UID:{uid}",
                        "DTSTAMP:20260101T000000Z", "DTSTART:20260506T100000Z", "DTEND:20260506T110000Z",
                        f"SUMMARY:{summary}", f"DESCRIPTION:about {summary}", "END:VEVENT", "END:VCALENDAR", ""])


def vcard(uid: str, fn: str, email: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{fn}", f"N:{fn};;;;",
                        f"EMAIL:{email}", "END:VCARD", ""])


@pytest.fixture(scope="module", params=engines())
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(f"atrest-dav-{request.param}")
    url = None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        url = pg.url
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "http")).init()
    for user in (ALICE, BOB):
        d.add_user(user, PASSWORD)
    d.start("http")
    marks = {k: marker(k) for k in KINDS}
    token = d.token(ALICE, PASSWORD)
    yield {"daemon": d, "marks": marks, "token": token, "url": url, "folder": folder,
           "written": write_everything(d, token, marks)}
    d.stop()


def call(d: TauDaemon, token: str, method: str, path: str, body: bytes | str = b"", **headers: str
         ) -> tuple[int, bytes]:
    raw = body.encode() if isinstance(body, str) else body
    status, _, out = d.http(method, path, raw or None, {k.replace("_", "-"): v for k, v in headers.items()},
                            token=token)
    return status, out


def write_everything(d: TauDaemon, token: str, m: dict[str, str]) -> dict[str, Any]:
    cal = f"/dav/calendars/{ALICE}"
    mk = ('<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
          f"<D:displayname>{m['calname']}</D:displayname><C:calendar-description>{m['caldesc']}"
          "</C:calendar-description></D:prop></D:set></C:mkcalendar>")
    assert call(d, token, "MKCALENDAR", f"{cal}/{m['calseg']}/", mk)[0] == 201
    assert call(d, token, "PUT", f"{cal}/{m['calseg']}/{m['evname']}.ics", ics(m["evuid"], m["summary"]),
                Content_Type="text/calendar")[0] == 201
    book = f"/dav/addressbooks/{ALICE}/contacts"
    patch = ('<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
             f"<D:displayname>{m['bookname']}</D:displayname></D:prop></D:set></D:propertyupdate>")
    assert call(d, token, "PROPPATCH", f"{book}/", patch)[0] == 207
    assert call(d, token, "PUT", f"{book}/{m['cardname']}.vcf",
                vcard(m["carduid"], m["fn"], f"{m['email']}@example.org"), Content_Type="text/vcard")[0] == 201
    files = f"/dav/files/{ALICE}"
    assert call(d, token, "MKCOL", f"{files}/{m['folder']}/")[0] == 201
    assert call(d, token, "PUT", f"{files}/{m['folder']}/{m['file']}.txt", f"text {m['content']}")[0] == 201
    dead = ('<D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:example:tests"><D:set><D:prop>'
            f"<X:note>{m['deadprop']}</X:note></D:prop></D:set></D:propertyupdate>")
    assert call(d, token, "PROPPATCH", f"{files}/{m['folder']}/", dead)[0] == 207
    assert call(d, token, "POST", f"/api/files?path=/{m['restfolder']}&type=folder")[0] == 201
    status, out = call(d, token, "POST", "/api/conversations", json.dumps(
        {"kind": "group", "encrypted": False, "title": m["title"], "members": [BOB]}), Content_Type="application/json")
    assert status in (200, 201), out
    conv = json.loads(out)["id"]
    status, out = call(d, token, "POST", "/api/messages", json.dumps(
        {"conversation": conv, "body": f"hello {m['body']}", "attachments": [{"file_id": "1", "name": m["attach"]}]}),
        Content_Type="application/json")
    assert status in (200, 201), out
    renamed = call(d, token, "PATCH", f"/api/conversations/{conv}", json.dumps(
        {"add": [], "remove": [], "title": m["retitle"]}), Content_Type="application/json")
    assert renamed[0] == 200, renamed
    return {"conversation": conv}


def test_everything_reads_back_through_the_protocols(world: Any) -> None:
    d, m, token = world["daemon"], world["marks"], world["token"]
    status, data = call(d, token, "GET", f"/dav/calendars/{ALICE}/{m['calseg']}/{m['evname']}.ics")
    assert status == 200 and m["summary"].encode() in data and m["evuid"].encode() in data
    status, data = call(d, token, "PROPFIND", f"/dav/calendars/{ALICE}/{m['calseg']}/", Depth="0")
    assert m["calname"].encode() in data and m["caldesc"].encode() in data
    status, data = call(d, token, "GET", f"/dav/addressbooks/{ALICE}/contacts/{m['cardname']}.vcf")
    assert status == 200 and m["fn"].encode() in data
    status, data = call(d, token, "PROPFIND", f"/dav/files/{ALICE}/{m['folder']}/", Depth="1")
    assert status == 207 and m["file"].encode() in data
    note = '<D:propfind xmlns:D="DAV:" xmlns:X="urn:example:tests"><D:prop><X:note/></D:prop></D:propfind>'
    status, data = call(d, token, "PROPFIND", f"/dav/files/{ALICE}/{m['folder']}/", note, Depth="0")
    assert status == 207 and m["deadprop"].encode() in data
    status, data = call(d, token, "GET", f"/dav/files/{ALICE}/{m['folder']}/{m['file']}.txt")
    assert status == 200 and data == f"text {m['content']}".encode()
    status, data = call(d, token, "GET", "/api/files?path=/")
    assert status == 200 and m["restfolder"] in data.decode() and m["folder"] in data.decode()
    status, data = call(d, token, "GET", f"/api/conversations/{world['written']['conversation']}")
    assert json.loads(data)["title"] == m["retitle"]
    status, data = call(d, token, "GET", f"/api/messages?conversation={world['written']['conversation']}")
    assert m["body"] in data.decode() and m["attach"] in data.decode()


def test_card_searches_still_find_sealed_values(world: Any) -> None:
    d, m, token = world["daemon"], world["marks"], world["token"]
    for how, value in (("contains", m["fn"][3:9]), ("equals", m["fn"]), ("starts-with", m["email"][:8])):
        prop = "EMAIL" if how == "starts-with" else "FN"
        query = ('<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
                 "<D:prop><D:getetag/></D:prop><C:filter>"
                 f'<C:prop-filter name="{prop}"><C:text-match match-type="{how}">{value.upper()}</C:text-match>'
                 "</C:prop-filter></C:filter></C:addressbook-query>")
        status, data = call(d, token, "REPORT", f"/dav/addressbooks/{ALICE}/contacts/", query, Depth="1")
        assert status == 207 and f"{m['cardname']}.vcf".encode() in data, (how, data)


def test_no_marker_in_the_data_dir_a_pg_dump_or_a_backup(world: Any, tmp_path: Path) -> None:
    d, m = world["daemon"], world["marks"]
    archive = tmp_path / "backup.tar.gz"
    d.cli("backup", str(archive), "--quiet")
    sources = [tree_bytes(d.data), archive_bytes(archive)]
    if world["url"]:
        sources.append(pg_dump_bytes(world["url"]))
    # the file's content is a blob (encrypted by the blob store before this issue): checked too
    found = leaks(m.values(), *sources)
    # a collection's URL segment stays readable by design (SECURITY.md): the search does see it
    assert {mark for _, mark in found} == {m["calseg"]}
