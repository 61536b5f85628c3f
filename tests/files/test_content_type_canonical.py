"""Issue 13 item 8 (re-review): the declared Content-Type is never echoed.

``PUT g.bin`` with ``Content-Type: application/zip;,text/javascript`` used to be served with that
very string; a browser takes the *last* type of such a list (Fetch, "extract a MIME type"), so
``<script src=/s/TOKEN>`` ran the upload as same-origin script despite ``nosniff``. Every way the
bytes can be fetched must now send one canonical ``type/subtype`` (plus an allow-listed charset),
and what is stored (PROPFIND ``getcontenttype``) is canonical too. Both engines (``cloud`` uses
``db_url``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.harness import resolve
from tests.support.http import HttpResponse

ALICE = "alice@example.test"
JSON = {"Content-Type": "application/json"}
GADGET = b"document.title='PWNED'"
OCTET = "application/octet-stream"
# one media type, lower case, at most a charset: nothing a browser could read as a list
SINGLE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*(; charset=[a-z0-9_-]+)?")

# (declared Content-Type, what every download must send)
CASES = [
    ("application/zip;,text/javascript", OCTET),
    ("application/zip, text/javascript", OCTET),
    ("text/plain,text/html", OCTET),
    ("image/png;x=\",text/html\"", "image/png"),  # the comma is quoted: one type, the parameter is dropped
    ("application/zip; x=\"a,text/javascript", OCTET),  # unterminated quote
    ("  APPLICATION/ZIP  ", "application/zip"),
    ("Text/Plain; Charset=UTF-8", "text/plain; charset=utf-8"),
    ("text/plain; charset=utf-7", "text/plain"),
    ("text/plain; charset=\"x-evil\"", "text/plain"),
    ("text/calendar; charset=utf-8; method=REQUEST; x=\"<script>\"", "text/calendar; charset=utf-8"),
    ("application/zip;text/javascript", "application/zip"),
    ("text/javascript", OCTET),  # stored as text/javascript (metadata), never served as such
    ("application/zip\t;\t,text/javascript", OCTET),
]


def _share(cloud: Any, file_id: str) -> str:
    r = cloud.api("POST", "/api/shares", json.dumps({"file_id": file_id}).encode(), headers=JSON)
    assert r.status == 201, r.body
    return str(r.json()["token"])


def _ids(cloud: Any, path: str) -> dict[str, str]:
    r = cloud.api("GET", f"/api/files?path={quote(path)}")
    assert r.status == 200, r.body
    return {i["name"]: str(i["id"]) for i in r.json()["items"]}


def _getcontenttype(cloud: Any, path: str) -> str:
    r = cloud.dav("PROPFIND", f"/dav/files/{ALICE}/{quote(path)}", headers={"Depth": "0"})
    assert r.status == 207, r.body
    found = re.search(rb"<[^>]*getcontenttype>([^<]*)<", r.body)
    assert found, r.body
    return found.group(1).decode()


def _assert_stored(cloud: Any, path: str, declared: str, served: str) -> None:
    """PROPFIND shows one canonical type: the served one, or the bare type that is served as octets."""
    stored = _getcontenttype(cloud, path)
    assert SINGLE.fullmatch(stored) and "," not in stored, (declared, stored)
    assert stored == served or (served == OCTET and stored == declared.strip().lower()), (declared, stored)


def _every_download(cloud: Any, folder: str, name: str, folder_token: str) -> list[tuple[str, HttpResponse]]:
    """DAV GET/HEAD/Range, REST by bearer and ?access_token=, share link (+Range), folder link ?path=."""
    fid = _ids(cloud, f"/{folder}")[name]
    dav = f"/dav/files/{ALICE}/{folder}/{quote(name)}"
    link = f"/s/{_share(cloud, fid)}"
    return [("dav", cloud.dav("GET", dav)), ("dav-head", cloud.dav("HEAD", dav)),
            ("dav-range", cloud.dav("GET", dav, headers={"Range": "bytes=0-3"})),
            ("rest-bearer", cloud.api("GET", f"/api/files/{fid}")),
            ("rest-query-token", cloud.client.get(f"/api/files/{fid}?access_token={cloud.token()}")),
            ("share-link", cloud.client.get(link)), ("share-link-head", cloud.client.request("HEAD", link)),
            ("share-link-range", cloud.client.get(link, headers={"Range": "bytes=0-3"})),
            ("folder-link", cloud.client.get(f"/s/{folder_token}?path={quote('/' + name)}"))]


def _assert_served(responses: list[tuple[str, HttpResponse]], declared: str, expected: str) -> None:
    for way, response in responses:
        assert response.status in (200, 206), (declared, way, response.status, response.body[:200])
        ctype = response.header("content-type") or ""
        assert ctype == expected, (declared, way, ctype)
        assert SINGLE.fullmatch(ctype) and "," not in ctype, (declared, way, ctype)
        assert sum(k.lower() == "content-type" for k, _ in response.raw_headers) == 1, response.raw_headers
        assert response.header("x-content-type-options") == "nosniff", (way, response.headers)
        if way in ("dav", "rest-bearer", "share-link", "folder-link"):
            assert response.body == GADGET, (declared, way)


def _folder(cloud: Any, name: str) -> str:
    assert cloud.dav("MKCOL", f"{name}/").status == 201
    return _share(cloud, _ids(cloud, "/")[name])


def test_a_declared_type_list_is_never_served_by_any_download_path(cloud: Any) -> None:
    """The attack as found: DAV PUT with a type list, then every way a page could load it."""
    token = _folder(cloud, "dav")
    for i, (declared, expected) in enumerate(CASES):
        name = f"g{i}.bin"
        put = cloud.dav("PUT", f"dav/{name}", GADGET, headers={"Content-Type": declared})
        assert put.status == 201, (declared, put.status, put.body)
        _assert_stored(cloud, f"dav/{name}", declared, expected)
        _assert_served(_every_download(cloud, "dav", name, token), declared, expected)


def test_rest_upload_stores_and_serves_only_the_canonical_type(cloud: Any) -> None:
    token = _folder(cloud, "rest")
    for i, (declared, expected) in enumerate(CASES):
        name = f"g{i}.bin"
        up = cloud.api("POST", f"/api/files?path=/rest/{name}", GADGET, headers={"Content-Type": declared})
        assert up.status == 201, (declared, up.status, up.body)
        _assert_stored(cloud, f"rest/{name}", declared, expected)
        _assert_served(_every_download(cloud, "rest", name, token), declared, expected)


def test_a_type_list_stored_before_the_fix_is_still_served_as_one_safe_type(cloud: Any) -> None:
    """Rows written by an older tau keep the raw string: serving must not trust the database either."""
    token = _folder(cloud, "old")
    for i, (declared, expected) in enumerate(CASES):
        name = f"g{i}.bin"
        assert cloud.dav("PUT", f"old/{name}", GADGET).status == 201
        fid = int(_ids(cloud, "/old")[name])
        resolve(cloud.registry.db.run("legacy_type", lambda txn, d=declared, f=fid: txn.execute(
            "UPDATE file_nodes SET content_type = ? WHERE id = ?", (d, f))))
        _assert_stored(cloud, f"old/{name}", declared, expected)
        _assert_served(_every_download(cloud, "old", name, token), declared, expected)


@pytest.mark.parametrize("header", [b"application/zip\r\n ,text/javascript", b"application/zip\r\n\t;,text/javascript",
                                    b"application/zip\r,text/javascript", b"application/zip\n,text/javascript"])
def test_cr_lf_in_the_declared_type_cannot_smuggle_a_second_type(cloud: Any, header: bytes) -> None:
    """Folded or split header lines: refused by the HTTP parser, or stored as one safe type."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from tests.support.http import parse_response

    auth = cloud.basic()["Authorization"].encode()
    raw = (b"PUT /dav/files/" + ALICE.encode() + b"/crlf.bin HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + auth
           + b"\r\nContent-Type: " + header + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(GADGET)
           + GADGET)
    channel = cloud.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    cloud.registry.reactor.advance(0)
    out = transport.value()
    status = parse_response(out).status if out else 400
    if status in (200, 201, 204):
        token = _share(cloud, _ids(cloud, "/")["crlf.bin"])
        for way, response in (("dav", cloud.dav("GET", "crlf.bin")), ("share", cloud.client.get(f"/s/{token}"))):
            ctype = response.header("content-type") or ""
            assert SINGLE.fullmatch(ctype) and "javascript" not in ctype, (header, way, ctype)
        assert "javascript" not in _getcontenttype(cloud, "crlf.bin")
    else:
        assert 400 <= status < 500, (header, out[:300])
