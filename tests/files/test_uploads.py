"""Resumable chunked uploads over REST (issue 19): ``/api/uploads`` on both engines."""

from __future__ import annotations

import hashlib
import json
from typing import Any

JSON = {"Content-Type": "application/json"}


def _create(cloud: Any, path: str, size: int, user: str = "alice@example.test") -> Any:
    return cloud.api("POST", "/api/uploads", json.dumps({"path": path, "size": size}).encode(), user=user,
                     headers=JSON)


def _put(cloud: Any, upload_id: str, start: int, chunk: bytes, total: int) -> Any:
    end = start + len(chunk) - 1
    return cloud.api("PUT", f"/api/uploads/{upload_id}", chunk,
                     headers={"Content-Range": f"bytes {start}-{end}/{total}"})


def test_three_chunks_make_the_file_byte_exact(cloud) -> None:
    data = bytes(range(256)) * 3000  # 768,000 bytes
    r = _create(cloud, "/big.bin", len(data))
    assert r.status == 201, r.body
    up = r.json()
    assert up["offset"] == 0 and up["url"] == f"/api/uploads/{up['id']}"
    third = len(data) // 3
    assert _put(cloud, up["id"], 0, data[:third], len(data)).json()["offset"] == third
    assert cloud.dav("GET", "big.bin").status == 404  # nothing linked before the last chunk
    assert _put(cloud, up["id"], third, data[third:2 * third], len(data)).json()["offset"] == 2 * third
    r = _put(cloud, up["id"], 2 * third, data[2 * third:], len(data))
    assert r.status == 201 and r.json()["path"] == "/big.bin" and r.json()["size"] == len(data)
    assert hashlib.sha256(cloud.dav("GET", "big.bin").body).digest() == hashlib.sha256(data).digest()
    assert cloud.api("GET", f"/api/uploads/{up['id']}").status == 404
    assert len(cloud.blob_keys()) == 1  # the chunks' blobs went once assembled


def test_status_gives_the_committed_offset(cloud) -> None:
    up = _create(cloud, "/f.bin", 10).json()
    _put(cloud, up["id"], 0, b"12345", 10)
    r = cloud.api("GET", f"/api/uploads/{up['id']}")
    assert r.json()["offset"] == 5 and r.header("Upload-Offset") == "5"
    r = cloud.api("HEAD", f"/api/uploads/{up['id']}")
    assert r.status == 200 and r.header("Upload-Offset") == "5"


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_offset(cloud) -> None:
    up = _create(cloud, "/f.bin", 10).json()
    _put(cloud, up["id"], 0, b"12345", 10)
    r = _put(cloud, up["id"], 0, b"12345", 10)  # a retry of a chunk that did arrive
    assert r.status == 409 and r.header("Upload-Offset") == "5"
    r = cloud.api("PUT", f"/api/uploads/{up['id']}?offset=5", b"67890")
    assert r.status == 201 and cloud.dav("GET", "f.bin").body == b"1234567890"


def test_a_chunk_past_the_declared_size_is_refused(cloud) -> None:
    up = _create(cloud, "/f.bin", 4).json()
    assert _put(cloud, up["id"], 0, b"12345", 4).status == 413
    assert cloud.api("GET", f"/api/uploads/{up['id']}").json()["offset"] == 0


def test_quota_is_checked_at_creation_and_at_each_chunk(cloud) -> None:
    cloud.registry.db.run("q", lambda txn: txn.execute("UPDATE users SET quota_bytes = 100 WHERE id = ?",
                                                       (cloud.alice.id,)))
    assert _create(cloud, "/huge.bin", 101).status == 507
    up = _create(cloud, "/ok.bin", 60).json()
    _put(cloud, up["id"], 0, b"a" * 30, 60)
    cloud.dav("PUT", "filler", b"f" * 60)  # the room went meanwhile
    assert _put(cloud, up["id"], 30, b"b" * 30, 60).status == 507


def test_complete_on_an_unfinished_upload_is_refused(cloud) -> None:
    up = _create(cloud, "/f.bin", 10).json()
    _put(cloud, up["id"], 0, b"12345", 10)
    r = cloud.api("POST", f"/api/uploads/{up['id']}/complete")
    assert r.status == 409 and r.header("Upload-Offset") == "5"


def test_an_empty_file_completes_on_request(cloud) -> None:
    up = _create(cloud, "/empty.txt", 0).json()
    r = cloud.api("POST", f"/api/uploads/{up['id']}/complete")
    assert r.status == 201 and cloud.dav("GET", "empty.txt").body == b""


def test_overwriting_through_an_upload_keeps_a_version(cloud) -> None:
    cloud.dav("PUT", "doc.txt", b"before")
    up = _create(cloud, "/doc.txt", 5).json()
    fid = _put(cloud, up["id"], 0, b"after", 5).json()["id"]
    [v] = cloud.api("GET", f"/api/files/{fid}/versions").json()["items"]
    assert cloud.api("GET", f"/api/files/{fid}/versions/{v['id']}").body == b"before"


def test_uploads_are_private_and_can_be_cancelled(cloud) -> None:
    up = _create(cloud, "/f.bin", 10).json()
    _put(cloud, up["id"], 0, b"12345", 10)
    assert cloud.api("GET", f"/api/uploads/{up['id']}", user="bob@example.test").status == 404
    assert cloud.api("PUT", f"/api/uploads/{up['id']}?offset=5", b"67890", user="bob@example.test").status == 404
    assert cloud.api("DELETE", f"/api/uploads/{up['id']}").status == 204
    assert cloud.api("GET", f"/api/uploads/{up['id']}").status == 404
    assert cloud.blob_keys() == []


def test_abandoned_uploads_expire_with_their_chunks(cloud) -> None:
    from tau.files import uploadstore

    up = _create(cloud, "/f.bin", 10).json()
    _put(cloud, up["id"], 0, b"12345", 10)
    out: list[Any] = []
    cloud.registry.db.run("age", lambda txn: txn.execute("UPDATE file_uploads SET updated_at = updated_at - 90000"))
    cloud.registry.db.run("expire", uploadstore.expire, cloud.tree.blobs.sync, 86400).addBoth(out.append)
    assert out == [1] and cloud.blob_keys() == []
    assert cloud.api("GET", f"/api/uploads/{up['id']}").status == 404


def test_bad_requests(cloud) -> None:
    assert _create(cloud, "/", 3).status == 400
    assert cloud.api("POST", "/api/uploads", b'{"path": "/x", "size": -1}', headers=JSON).status == 400
    assert _create(cloud, "/missing/x.bin", 3).status == 409
    up = _create(cloud, "/f.bin", 10).json()
    assert cloud.api("PUT", f"/api/uploads/{up['id']}", b"123").status == 400  # no offset given
    assert cloud.client.request("GET", f"/api/uploads/{up['id']}").status == 401
