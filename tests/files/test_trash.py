"""The trash (issue 19): deleting over REST or WebDAV moves to the trash; list, restore, purge,
expiry; trashed bytes count against the quota until purged; WebDAV never lists the trash."""

from __future__ import annotations

import json
from typing import Any

ALICE = "alice@example.test"
JSON = {"Content-Type": "application/json"}


def _trash(cloud: Any) -> list[dict[str, Any]]:
    r = cloud.api("GET", "/api/trash")
    assert r.status == 200, r.body
    return r.json()["items"]  # type: ignore[no-any-return]


def _sync(cloud: Any, fn: Any, *args: Any) -> Any:
    """Run a store function on the test database (which answers at once)."""
    out: list[Any] = []
    cloud.registry.db.run("test", fn, *args).addBoth(out.append)
    if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def _propfind_names(cloud: Any, path: str = "") -> list[str]:
    r = cloud.dav("PROPFIND", path, headers={"Depth": "1"})
    assert r.status == 207
    return r.body.decode()


def test_rest_delete_moves_to_trash_with_original_path(cloud) -> None:
    cloud.api("POST", "/api/files?path=/docs&type=folder")
    fid = cloud.api("POST", "/api/files?path=/docs/plan.txt", b"the plan").json()["id"]
    assert cloud.api("DELETE", f"/api/files/{fid}").status == 204
    assert cloud.api("GET", f"/api/files/{fid}").status == 404
    assert cloud.dav("GET", "docs/plan.txt").status == 404
    [item] = _trash(cloud)
    assert item["name"] == "plan.txt" and item["path"] == "/docs/plan.txt" and item["size"] == 8
    assert item["type"] == "file" and item["deleted_at"].endswith("Z")


def test_webdav_delete_goes_to_trash_and_propfind_never_shows_it(cloud) -> None:
    cloud.dav("MKCOL", "album")
    cloud.dav("PUT", "album/a.jpg", b"A" * 100)
    cloud.dav("PUT", "album/b.jpg", b"B" * 50)
    assert cloud.dav("DELETE", "album").status == 204
    listing = _propfind_names(cloud)
    assert "album" not in listing and "a.jpg" not in listing
    [item] = _trash(cloud)
    assert item["type"] == "folder" and item["size"] == 150 and item["path"] == "/album"
    top = cloud.dav("PROPFIND", f"/dav/files/{ALICE}/", headers={"Depth": "infinity"})
    assert b"a.jpg" not in top.body


def test_restore_puts_it_back_and_webdav_lists_it_again(cloud) -> None:
    cloud.dav("MKCOL", "album")
    cloud.dav("PUT", "album/a.jpg", b"A" * 100)
    cloud.dav("DELETE", "album")
    [item] = _trash(cloud)
    r = cloud.api("POST", f"/api/trash/{item['id']}/restore")
    assert r.status == 200 and r.json()["path"] == "/album"
    assert cloud.dav("GET", "album/a.jpg").body == b"A" * 100
    assert "album" in _propfind_names(cloud)
    assert _trash(cloud) == []


def test_restore_onto_a_taken_name_gets_restored_suffix(cloud) -> None:
    cloud.dav("PUT", "notes.txt", b"old")
    cloud.dav("DELETE", "notes.txt")
    cloud.dav("PUT", "notes.txt", b"new")
    [item] = _trash(cloud)
    r = cloud.api("POST", f"/api/trash/{item['id']}/restore")
    assert r.status == 200 and r.json()["path"] == "/notes (restored).txt"
    assert cloud.dav("GET", "notes.txt").body == b"new"
    assert cloud.dav("GET", "notes%20(restored).txt").body == b"old"


def test_restore_into_a_folder_that_is_gone_lands_in_the_root(cloud) -> None:
    cloud.dav("MKCOL", "tmp")
    cloud.dav("PUT", "tmp/keep.txt", b"keep")
    cloud.dav("DELETE", "tmp/keep.txt")
    cloud.dav("DELETE", "tmp")
    keep = next(i for i in _trash(cloud) if i["name"] == "keep.txt")
    assert cloud.api("POST", f"/api/trash/{keep['id']}/restore").json()["path"] == "/keep.txt"


def test_trashed_bytes_count_against_quota_until_purged(cloud) -> None:
    _sync(cloud, lambda txn: txn.execute("UPDATE users SET quota_bytes = 1000 WHERE id = ?",
                                                       (cloud.alice.id,)))
    cloud.dav("PUT", "big", b"x" * 800)
    cloud.dav("DELETE", "big")
    assert cloud.dav("PUT", "other", b"y" * 800).status == 507  # the trash still holds 800 bytes
    [item] = _trash(cloud)
    assert cloud.api("DELETE", f"/api/trash/{item['id']}").status == 204
    assert cloud.dav("PUT", "other", b"y" * 800).status == 201
    assert cloud.blob_keys() and len(cloud.blob_keys()) == 1


def test_empty_trash_purges_everything_and_frees_blobs(cloud) -> None:
    for name in ("a", "b", "c"):
        cloud.dav("PUT", name, name.encode() * 10)
        cloud.dav("DELETE", name)
    assert len(_trash(cloud)) == 3 and len(cloud.blob_keys()) == 3
    assert cloud.api("DELETE", "/api/trash").status == 204
    assert _trash(cloud) == [] and cloud.blob_keys() == []


def test_trash_is_per_user(cloud) -> None:
    cloud.dav("PUT", "mine", b"alice's")
    cloud.dav("DELETE", "mine")
    [item] = _trash(cloud)
    assert cloud.api("GET", "/api/trash", user="bob@example.test").json()["items"] == []
    assert cloud.api("POST", f"/api/trash/{item['id']}/restore", user="bob@example.test").status == 404
    assert cloud.api("DELETE", f"/api/trash/{item['id']}", user="bob@example.test").status == 404


def test_retention_job_purges_old_items(cloud) -> None:
    from tau.files import trashstore

    cloud.dav("PUT", "old", b"old")
    cloud.dav("DELETE", "old")
    cloud.dav("PUT", "fresh", b"fresh")
    cloud.dav("DELETE", "fresh")
    _sync(cloud, lambda txn: txn.execute("UPDATE file_trash SET deleted_at = deleted_at - 31 * 86400"
                                         " WHERE id = (SELECT MIN(id) FROM file_trash)"))
    assert _sync(cloud, trashstore.expire, cloud.tree.blobs.sync, 30 * 86400) == 1
    assert [i["name"] for i in _trash(cloud)] == ["fresh"]
    assert len(cloud.blob_keys()) == 1


def test_trash_names_and_paths_are_sealed_at_rest(cloud) -> None:
    cloud.dav("MKCOL", "Secret%20Plans")
    cloud.dav("PUT", "Secret%20Plans/heist.txt", b"x")
    cloud.dav("DELETE", "Secret%20Plans/heist.txt")
    rows = _sync(cloud, lambda txn: txn.query(
        "SELECT n.name, n.name_s, t.path_s FROM file_trash t JOIN file_nodes n ON n.id = t.node_id"))
    [(name, name_s, path_s)] = rows
    assert "heist" not in name and b"heist" not in bytes(name_s) and b"heist" not in bytes(path_s)
    assert b"Secret" not in bytes(path_s)


def test_share_links_of_a_trashed_file_stop_working(cloud) -> None:
    fid = cloud.api("POST", "/api/files?path=/shared.txt", b"public").json()["id"]
    r = cloud.api("POST", "/api/shares", json.dumps({"file_id": fid}).encode(), headers=JSON)
    assert r.status == 201, r.body
    token = r.json()["token"]
    assert cloud.client.request("GET", f"/s/{token}", headers={"Accept": "application/json"}).status == 200
    cloud.api("DELETE", f"/api/files/{fid}")
    assert cloud.client.request("GET", f"/s/{token}", headers={"Accept": "application/json"}).status == 404


def test_trash_days_zero_deletes_at_once(tmp_path, db_url) -> None:
    from tests.files.conftest import Cloud
    from tests.support.harness import make_registry

    registry = make_registry(tmp_path / "tau", db_url, files={"trash_days": "0"},
                             limits={"requests_per_minute_ip": "0", "requests_per_hour_user": "0"})
    cloud = Cloud(registry)
    cloud.dav("PUT", "now-gone", b"bytes")
    assert cloud.dav("DELETE", "now-gone").status == 204
    assert _trash(cloud) == [] and cloud.blob_keys() == []


def test_privacy_export_lists_trashed_files_under_their_original_names(cloud) -> None:
    from tau.files import privacy_store

    cloud.dav("MKCOL", "notes")
    cloud.dav("PUT", "notes/diary.txt", b"dear diary")
    cloud.dav("DELETE", "notes")
    rows = _sync(cloud, privacy_store.nodes, cloud.alice.id)
    by_id = {r[0]: r for r in rows}

    def path(row: Any) -> str:
        parts = []
        while row is not None and row[1] is not None:
            parts.append(row[2])
            row = by_id.get(row[1])
        return "/".join(reversed(parts))

    files = [path(r) for r in rows if r[3] == "file"]
    assert files == [f"{privacy_store.TRASH_FOLDER}/notes/diary.txt"]
