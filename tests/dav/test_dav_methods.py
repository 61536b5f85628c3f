"""RFC 4918 methods through the DAV core (in-process, both database engines)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

ALICE = "alice@example.test"

PROPFIND_ALL = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def props(*names: str) -> str:
    inner = "".join(f"<D:{n}/>" for n in names)
    return f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>{inner}</D:prop></D:propfind>'


def test_options_advertises_class_2(cloud) -> None:
    r = cloud.dav("OPTIONS", "")
    assert r.status == 200
    assert "2" in r.header("dav").split(", ") and "PROPFIND" in r.header("allow")


def test_propfind_depths_and_modes(cloud) -> None:
    assert cloud.dav("PUT", "a.txt", b"abc").status == 201
    assert cloud.dav("MKCOL", "dir").status == 201
    r = cloud.dav("PROPFIND", "", headers={"Depth": "1"})
    assert r.status == 207
    body = r.body.decode()
    assert f"/dav/files/{ALICE}/a.txt" in body and f"/dav/files/{ALICE}/dir/" in body
    assert "<D:getcontentlength>3</D:getcontentlength>" in body
    r = cloud.dav("PROPFIND", "a.txt", props("getetag", "nosuch"), headers={"Depth": "0"})
    assert "HTTP/1.1 404" in r.body.decode() and "<D:getetag>" in r.body.decode()
    r = cloud.dav("PROPFIND", "a.txt", '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>', headers={"Depth": "0"})
    assert "<D:getetag/>" in r.body.decode()
    r = cloud.dav("PROPFIND", "", PROPFIND_ALL)  # no Depth header means infinity
    assert r.status == 403 and b"propfind-finite-depth" in r.body


def test_propfind_mount_root_lists_own_home(cloud) -> None:
    r = cloud.dav("PROPFIND", "/dav/files/", headers={"Depth": "1"})
    assert r.status == 207
    assert f"/dav/files/{ALICE}/" in r.body.decode() and "bob" not in r.body.decode()


def test_proppatch_dead_props_and_protected(cloud) -> None:
    cloud.dav("PUT", "p.txt", b"x")
    body = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:color>red<Z:b/></Z:color>'
            "</D:prop></D:set></D:propertyupdate>")
    assert cloud.dav("PROPPATCH", "p.txt", body).status == 207
    r = cloud.dav("PROPFIND", "p.txt", '<D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:color/></D:prop>'
                  "</D:propfind>", headers={"Depth": "0"})
    assert "red" in r.body.decode() and "HTTP/1.1 200" in r.body.decode()
    bad = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><D:getetag>x</D:getetag>'
           "<Z:size>1</Z:size></D:prop></D:set></D:propertyupdate>")
    r = cloud.dav("PROPPATCH", "p.txt", bad)
    assert "HTTP/1.1 403" in r.body.decode() and "HTTP/1.1 424" in r.body.decode()


def test_mkcol_statuses(cloud) -> None:
    assert cloud.dav("MKCOL", "c").status == 201
    assert cloud.dav("MKCOL", "c").status == 405
    assert cloud.dav("MKCOL", "x/y").status == 409
    assert cloud.dav("MKCOL", "d", "<x/>").status == 415


def test_put_get_etag_conditions_and_ranges(cloud) -> None:
    data = bytes(range(256)) * 1000
    r = cloud.dav("PUT", "f.bin", data)
    assert r.status == 201
    etag = r.header("etag")
    r = cloud.dav("GET", "f.bin")
    assert r.body == data and r.header("etag") == etag
    assert cloud.dav("GET", "f.bin", headers={"If-None-Match": etag}).status == 304
    r = cloud.dav("GET", "f.bin", headers={"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == data[100:200] and r.header("content-range") == f"bytes 100-199/{len(data)}"
    r = cloud.dav("GET", "f.bin", headers={"Range": "bytes=-10"})
    assert r.body == data[-10:]
    assert cloud.dav("GET", "f.bin", headers={"Range": f"bytes={len(data)}-"}).status == 416
    assert cloud.dav("PUT", "f.bin", b"new", headers={"If-Match": '"nope"'}).status == 412
    assert cloud.dav("PUT", "f.bin", b"new", headers={"If-None-Match": "*"}).status == 412
    assert cloud.dav("PUT", "f.bin", b"new", headers={"If-Match": etag}).status == 204
    assert cloud.dav("HEAD", "f.bin").header("content-length") == "3"
    assert cloud.dav("PUT", "missing/f", b"x").status == 409


def test_unicode_names_are_nfc(cloud) -> None:
    nfd = unicodedata.normalize("NFD", "café.txt")
    assert cloud.dav("PUT", quote(nfd), b"coffee").status == 201
    assert cloud.dav("GET", quote("café.txt")).body == b"coffee"


def test_delete(cloud) -> None:
    cloud.dav("MKCOL", "d")
    cloud.dav("PUT", "d/x", b"1")
    assert cloud.dav("DELETE", "d").status == 204
    assert cloud.dav("GET", "d/x").status == 404
    assert cloud.dav("DELETE", "d").status == 404


def test_copy_move_overwrite_depth(cloud) -> None:
    base = f"http://localhost/dav/files/{ALICE}/"
    cloud.dav("MKCOL", "src")
    cloud.dav("PUT", "src/a", b"A")
    assert cloud.dav("COPY", "src", headers={"Destination": base + "dst"}).status == 201
    assert cloud.dav("GET", "dst/a").body == b"A"
    assert cloud.dav("COPY", "src", headers={"Destination": base + "dst", "Overwrite": "F"}).status == 412
    assert cloud.dav("COPY", "src", headers={"Destination": base + "shallow", "Depth": "0"}).status == 201
    assert cloud.dav("GET", "shallow/a").status == 404
    assert cloud.dav("MOVE", "dst", headers={"Destination": base + "moved"}).status == 201
    assert cloud.dav("GET", "dst/a").status == 404 and cloud.dav("GET", "moved/a").body == b"A"
    assert cloud.dav("MOVE", "moved", headers={"Destination": base + "src"}).status == 204
    assert cloud.dav("MOVE", "src", headers={"Destination": base + "none/x"}).status == 409


def test_locks_exclusive_shared_refresh_expiry(cloud) -> None:
    cloud.dav("PUT", "l.txt", b"1")
    info = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
            "</D:locktype><D:owner>me</D:owner></D:lockinfo>")
    r = cloud.dav("LOCK", "l.txt", info, headers={"Timeout": "Second-60"})
    assert r.status == 200
    token = r.header("lock-token").strip("<>")
    assert cloud.dav("PUT", "l.txt", b"2").status == 423
    assert cloud.dav("LOCK", "l.txt", info).status == 423
    assert cloud.dav("PUT", "l.txt", b"2", headers={"If": f"(<{token}>)"}).status == 204
    assert cloud.dav("LOCK", "l.txt", headers={"If": f"(<{token}>)", "Timeout": "Second-600"}).status == 200
    cloud.registry.reactor.advance(601)
    assert cloud.dav("PUT", "l.txt", b"3").status == 204  # expired
    shared = info.replace("exclusive", "shared")
    t1 = cloud.dav("LOCK", "l.txt", shared).header("lock-token")
    t2 = cloud.dav("LOCK", "l.txt", shared).header("lock-token")
    assert t1 != t2
    assert cloud.dav("UNLOCK", "l.txt", headers={"Lock-Token": t1}).status == 204
    assert cloud.dav("UNLOCK", "l.txt", headers={"Lock-Token": t2}).status == 204
    assert cloud.dav("PUT", "l.txt", b"4").status == 204


def test_lock_on_unmapped_url_creates_empty_resource(cloud) -> None:
    info = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
            "</D:locktype></D:lockinfo>")
    r = cloud.dav("LOCK", "new.txt", info)
    assert r.status == 201
    assert cloud.dav("GET", "new.txt").body == b""


def sync(cloud, token: str = "") -> tuple[str, str]:
    body = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>'
            "<D:prop><D:getetag/></D:prop></D:sync-collection>")
    r = cloud.dav("REPORT", "", body)
    assert r.status == 207, r.body
    text = r.body.decode()
    return re.search(r"<D:sync-token>([^<]+)</D:sync-token>", text).group(1), text


def test_sync_collection(cloud) -> None:
    cloud.dav("PUT", "one", b"1")
    token, text = sync(cloud)
    assert "/one" in text
    cloud.dav("PUT", "two", b"2")
    cloud.dav("DELETE", "one")
    token2, text = sync(cloud, token)
    assert "/two" in text and "HTTP/1.1 404" in text and token2 != token
    _, text = sync(cloud, token2)
    assert "<D:response>" not in text
    r = cloud.dav("REPORT", "", '<D:sync-collection xmlns:D="DAV:"><D:sync-token>bogus</D:sync-token>'
                  "</D:sync-collection>")
    assert r.status == 403 and b"valid-sync-token" in r.body


def test_quota_properties(cloud) -> None:
    cloud.dav("PUT", "q", b"12345")
    r = cloud.dav("PROPFIND", "", props("quota-used-bytes", "quota-available-bytes"), headers={"Depth": "0"})
    assert "<D:quota-used-bytes>5</D:quota-used-bytes>" in r.body.decode()
    assert "<D:quota-available-bytes>" in r.body.decode()


def test_windows_and_macos_style_propfind(cloud) -> None:
    cloud.dav("PUT", "doc.txt", b"x")
    windows = ('<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/>'
               "<D:getcontentlength/><D:creationdate/><D:getlastmodified/><D:resourcetype/>"
               '<Z:Win32FileAttributes xmlns:Z="urn:schemas-microsoft-com:"/>'
               '<Z:Win32LastAccessTime xmlns:Z="urn:schemas-microsoft-com:"/></D:prop></D:propfind>')
    r = cloud.dav("PROPFIND", "", windows, headers={"Depth": "1", "User-Agent": "Microsoft-WebDAV-MiniRedir/10.0"})
    assert r.status == 207 and b"Win32FileAttributes" in r.body and b"HTTP/1.1 404" in r.body
    finder = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/>'
              "<D:getcontentlength/><D:resourcetype/><D:quota-available-bytes/><D:quota-used-bytes/>"
              "</D:prop></D:propfind>")
    r = cloud.dav("PROPFIND", "", finder, headers={"Depth": "0", "User-Agent": "WebDAVFS/3.0.0 (03008000) Darwin"})
    assert r.status == 207 and b"<D:quota-used-bytes>1</D:quota-used-bytes>" in r.body
    assert cloud.dav("PUT", "._doc.txt", b"\x00\x05\x16\x07").status == 201  # AppleDouble files are plain files
    assert cloud.dav("PROPFIND", "", PROPFIND_ALL, headers={"Depth": "1"}).body.count(b"<D:response>") == 3


def test_chunked_put_streams_without_length(cloud) -> None:
    data = bytes(range(256)) * 4096 + b"tail"
    assert cloud.dav("PUT", "chunked.bin", data, chunked=True).status == 201
    assert cloud.dav("GET", "chunked.bin").body == data
    assert cloud.temp_files() == []


def test_sync_token_older_than_the_change_log(cloud, monkeypatch) -> None:
    from tau.files import store

    monkeypatch.setattr(store, "KEEP_CHANGES", 3)
    monkeypatch.setattr(store, "PRUNE_EVERY", 2)
    cloud.dav("PUT", "first", b"x")
    token, _ = sync(cloud)
    for i in range(8):
        cloud.dav("PUT", f"n{i}", b"x")
    body = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>'
            "<D:prop/></D:sync-collection>")
    r = cloud.dav("REPORT", "", body)
    assert r.status == 403 and b"valid-sync-token" in r.body
    fresh, text = sync(cloud)
    assert text.count("<D:response>") == 9
