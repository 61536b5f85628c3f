"""Public links (/s/TOKEN: password, expiry, revoke, folder listing, ZIP, upload) and user shares."""

from __future__ import annotations

import base64
import io
import json
import zipfile

ALICE, BOB = "alice@example.test", "bob@example.test"
JSON = {"Content-Type": "application/json"}


def share(cloud, obj: dict, user: str = ALICE):
    return cloud.api("POST", "/api/shares", json.dumps(obj).encode(), user=user, headers=JSON)


def test_file_link_with_password(cloud) -> None:
    fid = cloud.api("POST", "/api/files?path=/photo.jpg", b"JPEGDATA").json()["id"]
    r = share(cloud, {"file_id": fid, "password": "open sesame"})
    assert r.status == 201
    token = r.json()["token"]
    assert r.json()["url"].endswith(f"/s/{token}")
    assert cloud.client.get(f"/s/{token}").status == 401
    assert cloud.client.get(f"/s/{token}?password=wrong").status == 401
    r = cloud.client.get(f"/s/{token}?password=open%20sesame")
    assert r.status == 200 and r.body == b"JPEGDATA"
    basic = base64.b64encode(b"x:open sesame").decode()
    r = cloud.client.get(f"/s/{token}", headers={"Authorization": f"Basic {basic}", "Range": "bytes=0-3"})
    assert r.status == 206 and r.body == b"JPEG"


def test_expired_and_revoked_links(cloud) -> None:
    fid = cloud.api("POST", "/api/files?path=/f", b"1").json()["id"]
    old = share(cloud, {"file_id": fid, "expires_at": "2001-01-01T00:00:00Z"}).json()["token"]
    assert cloud.client.get(f"/s/{old}").status == 404
    live = share(cloud, {"file_id": fid})
    assert cloud.client.get(f"/s/{live.json()['token']}").status == 200
    assert cloud.api("DELETE", f"/api/shares/{live.json()['id']}", user=BOB).status == 404
    assert cloud.api("DELETE", f"/api/shares/{live.json()['id']}").status == 204
    assert cloud.client.get(f"/s/{live.json()['token']}").status == 404
    assert cloud.client.get("/s/not-a-token").status == 404


def test_folder_link_lists_zips_and_accepts_uploads(cloud) -> None:
    cloud.dav("MKCOL", "album")
    cloud.dav("MKCOL", "album/sub")
    cloud.dav("PUT", "album/a.txt", b"A" * 70000)
    cloud.dav("PUT", "album/sub/b.txt", b"B")
    folder = cloud.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    token = share(cloud, {"file_id": folder, "can_upload": True}).json()["token"]
    listing = cloud.client.get(f"/s/{token}").json()
    assert sorted(i["name"] for i in listing["items"]) == ["a.txt", "sub"]
    assert cloud.client.get(f"/s/{token}?path=/sub/b.txt").body == b"B"
    r = cloud.client.get(f"/s/{token}?download=zip")
    assert r.status == 200 and r.header("content-type") == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.body)) as z:
        assert z.read("a.txt") == b"A" * 70000 and z.read("sub/b.txt") == b"B"
        assert z.testzip() is None
    r = cloud.client.request("POST", f"/s/{token}?name=dropped.txt", b"from a stranger")
    assert r.status == 201
    assert cloud.dav("GET", "album/dropped.txt").body == b"from a stranger"
    assert cloud.client.request("POST", f"/s/{token}?name=dropped.txt", b"again").status == 409
    ro = share(cloud, {"file_id": folder}).json()["token"]
    assert cloud.client.request("POST", f"/s/{ro}?name=x", b"no").status == 403


def test_user_share_appears_under_shared(cloud) -> None:
    cloud.dav("MKCOL", "proj")
    cloud.dav("PUT", "proj/spec.md", b"# spec")
    folder = cloud.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    assert share(cloud, {"file_id": folder, "user": BOB, "permission": "read"}).status == 201
    r = cloud.dav("PROPFIND", f"/dav/files/{BOB}/", user=BOB, headers={"Depth": "1"})
    assert f"/dav/files/{BOB}/Shared/".encode() in r.body
    r = cloud.dav("PROPFIND", f"/dav/files/{BOB}/Shared/", user=BOB, headers={"Depth": "1"})
    assert f"/dav/files/{BOB}/Shared/proj/".encode() in r.body
    assert cloud.dav("GET", f"/dav/files/{BOB}/Shared/proj/spec.md", user=BOB).body == b"# spec"
    assert cloud.dav("PUT", f"/dav/files/{BOB}/Shared/proj/spec.md", b"vandal", user=BOB).status == 403
    assert cloud.dav("DELETE", f"/dav/files/{BOB}/Shared/proj/spec.md", user=BOB).status == 403
    items = cloud.api("GET", "/api/files?path=/Shared/proj", user=BOB).json()["items"]
    assert items[0]["path"] == "/Shared/proj/spec.md"
    assert cloud.api("GET", f"/api/files/{items[0]['id']}", user=BOB).body == b"# spec"
    assert share(cloud, {"file_id": items[0]["id"]}, user=BOB).status == 404  # cannot re-share
