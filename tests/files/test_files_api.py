"""REST /api/files: streamed uploads (raw and multipart), listing with pagination, Range, delete, move."""

from __future__ import annotations

import json

ALICE, BOB = "alice@example.test", "bob@example.test"


def test_needs_bearer(cloud) -> None:
    assert cloud.client.request("GET", "/api/files?path=/").status == 401


def test_raw_upload_list_download_delete(cloud) -> None:
    data = bytes(range(256)) * 500
    r = cloud.api("POST", "/api/files?path=/report.bin", data)
    assert r.status == 201, r.body
    meta = r.json()
    assert meta["name"] == "report.bin" and meta["size"] == len(data) and meta["path"] == "/report.bin"
    assert cloud.dav("GET", "report.bin").body == data  # the same tree DAV serves
    r = cloud.api("GET", f"/api/files/{meta['id']}", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == data[10:20]
    assert cloud.api("GET", f"/api/files/{meta['id']}").body == data
    listing = cloud.api("GET", "/api/files?path=/").json()
    assert listing["items"][0]["type"] == "file" and listing["next_cursor"] is None
    assert cloud.api("DELETE", f"/api/files/{meta['id']}").status == 204
    assert cloud.api("GET", f"/api/files/{meta['id']}").status == 404
    assert len(cloud.blob_keys()) == 1  # in the trash until it is emptied
    assert cloud.api("DELETE", "/api/trash").status == 204
    assert cloud.blob_keys() == []


def test_multipart_upload(cloud) -> None:
    cloud.api("POST", "/api/files?path=/docs&type=folder")
    payload = b"line\r\n--not-the-boundary\r\n" * 5000
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\n" + payload + b"\r\n--XyZ--\r\n")
    r = cloud.api("POST", "/api/files?path=/docs", body, headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status == 201, r.body
    assert r.json()["path"] == "/docs/notes.txt" and r.json()["size"] == len(payload)
    assert cloud.dav("GET", "docs/notes.txt").body == payload
    empty = b"--XyZ--\r\n"
    r = cloud.api("POST", "/api/files?path=/x", empty, headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status == 400


def test_pagination(cloud) -> None:
    cloud.api("POST", "/api/files?path=/many&type=folder")
    for i in range(7):
        cloud.api("POST", f"/api/files?path=/many/f{i}", b"x")
    seen, cursor = [], None
    while True:
        r = cloud.api("GET", "/api/files?path=/many&limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [i["name"] for i in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"f{i}" for i in range(7)]


def test_move_and_rename(cloud) -> None:
    cloud.api("POST", "/api/files?path=/a&type=folder")
    fid = cloud.api("POST", "/api/files?path=/a/old.txt", b"data").json()["id"]
    headers = {"Content-Type": "application/json"}
    r = cloud.api("PATCH", f"/api/files/{fid}", json.dumps({"name": "new.txt"}).encode(), headers=headers)
    assert r.status == 200 and r.json()["path"] == "/a/new.txt"
    r = cloud.api("PATCH", f"/api/files/{fid}", json.dumps({"path": "/moved.txt"}).encode(), headers=headers)
    assert r.json()["path"] == "/moved.txt"
    assert cloud.dav("GET", "moved.txt").body == b"data"
    r = cloud.api("PATCH", f"/api/files/{fid}", json.dumps({"path": "/nope/x"}).encode(), headers=headers)
    assert r.status == 409


def test_dedupe_and_reference_counts(cloud) -> None:
    cloud.dav("PUT", "one", b"same bytes")
    cloud.dav("PUT", "two", b"same bytes")
    assert len(cloud.blob_keys()) == 1
    base = f"http://localhost/dav/files/{ALICE}/"
    cloud.dav("COPY", "one", headers={"Destination": base + "three"})
    cloud.dav("DELETE", "one")
    cloud.dav("DELETE", "two")
    assert cloud.api("DELETE", "/api/trash").status == 204  # "one" and "two" purged from the trash
    assert len(cloud.blob_keys()) == 1 and cloud.dav("GET", "three").body == b"same bytes"
    cloud.dav("PUT", "three", b"other")  # replacing keeps the old blob as a version of "three"
    assert len(cloud.blob_keys()) == 2
    cloud.dav("DELETE", "three")
    assert cloud.api("DELETE", "/api/trash").status == 204  # the file and its versions purged
    assert cloud.blob_keys() == []


def test_file_blobs_do_not_share_mail_addresses(cloud) -> None:
    from twisted.internet.defer import Deferred

    cloud.dav("PUT", "x", b"shared content")
    d: Deferred = cloud.registry.blobs.put(b"shared content")
    out: list = []
    d.addBoth(out.append)
    assert len(cloud.blob_keys()) == 2  # mail's store and ours address blobs differently


def test_rest_respects_dav_locks(cloud) -> None:
    fid = cloud.api("POST", "/api/files?path=/locked.txt", b"v1").json()["id"]
    info = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
            "</D:locktype></D:lockinfo>")
    token = cloud.dav("LOCK", "locked.txt", info).header("lock-token")
    assert cloud.api("POST", "/api/files?path=/locked.txt", b"v2").status == 423
    assert cloud.api("DELETE", f"/api/files/{fid}").status == 423
    body = json.dumps({"name": "renamed.txt"}).encode()
    assert cloud.api("PATCH", f"/api/files/{fid}", body, headers={"Content-Type": "application/json"}).status == 423
    cloud.dav("UNLOCK", "locked.txt", headers={"Lock-Token": token})
    assert cloud.api("DELETE", f"/api/files/{fid}").status == 204


def test_deleted_users_blobs_are_collected(cloud) -> None:
    from tau.auth import accounts
    from tau.files.blobrefs import collect_orphans
    from tests.support.harness import resolve

    cloud.dav("PUT", "mine", b"alice's")
    cloud.dav("PUT", f"/dav/files/{BOB}/his", b"bob's", user=BOB)
    assert len(cloud.blob_keys()) == 2
    cloud.registry.db.sync.run("del", accounts.delete_user, BOB)
    assert resolve(cloud.tree.run("gc", collect_orphans, cloud.tree.blobs.sync)) == 1
    assert len(cloud.blob_keys()) == 1 and cloud.dav("GET", "mine").body == b"alice's"
