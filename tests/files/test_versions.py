"""File versions (issue 19): an overwrite keeps the previous content; list, download, restore;
bounded per file; the collector, the orphan collector and the blob sweeper keep version blobs."""

from __future__ import annotations

import time
from typing import Any

from tau.blobs.sweeper import BlobSweeper
from tests.blobs.conftest import age_blob
from tests.support.harness import resolve


def _versions(cloud: Any, fid: str) -> list[dict[str, Any]]:
    r = cloud.api("GET", f"/api/files/{fid}/versions")
    assert r.status == 200, r.body
    return r.json()["items"]  # type: ignore[no-any-return]


def _fid(cloud: Any, path: str) -> str:
    return str(cloud.api("GET", f"/api/files?path={path}").json()["items"][0]["id"])


def test_webdav_overwrite_keeps_the_old_content_as_a_version(cloud) -> None:
    cloud.dav("PUT", "report.txt", b"first draft")
    cloud.dav("PUT", "report.txt", b"second draft!")
    fid = _fid(cloud, "/report.txt")
    [v] = _versions(cloud, fid)
    assert v["size"] == len(b"first draft")
    assert cloud.api("GET", f"/api/files/{fid}/versions/{v['id']}").body == b"first draft"
    assert cloud.dav("GET", "report.txt").body == b"second draft!"


def test_restore_makes_the_version_current_and_keeps_the_current_one(cloud) -> None:
    cloud.dav("PUT", "r.txt", b"v1")
    cloud.dav("PUT", "r.txt", b"v2 longer")
    fid = _fid(cloud, "/r.txt")
    [v] = _versions(cloud, fid)
    r = cloud.api("POST", f"/api/files/{fid}/versions/{v['id']}/restore")
    assert r.status == 200 and r.json()["size"] == 2
    assert cloud.dav("GET", "r.txt").body == b"v1"
    [now] = _versions(cloud, fid)
    assert cloud.api("GET", f"/api/files/{fid}/versions/{now['id']}").body == b"v2 longer"
    used = cloud.api("GET", "/api/files?path=/").json()  # the quota follows the current size
    assert used["items"][0]["size"] == 2


def test_versions_are_bounded_per_file(cloud) -> None:
    for i in range(14):
        cloud.dav("PUT", "busy.txt", f"content {i}".encode())
    fid = _fid(cloud, "/busy.txt")
    found = _versions(cloud, fid)
    assert len(found) == 10
    newest = cloud.api("GET", f"/api/files/{fid}/versions/{found[0]['id']}").body
    assert newest == b"content 12"
    assert len(cloud.blob_keys()) == 11  # the current content and ten versions: older ones collected


def test_versions_are_private(cloud) -> None:
    cloud.dav("PUT", "p.txt", b"one")
    cloud.dav("PUT", "p.txt", b"two")
    fid = _fid(cloud, "/p.txt")
    [v] = _versions(cloud, fid)
    assert cloud.api("GET", f"/api/files/{fid}/versions", user="bob@example.test").status == 404
    assert cloud.api("GET", f"/api/files/{fid}/versions/{v['id']}", user="bob@example.test").status == 404
    assert cloud.api("POST", f"/api/files/{fid}/versions/{v['id']}/restore", user="bob@example.test").status == 404


def test_purging_a_file_releases_its_version_blobs(cloud) -> None:
    cloud.dav("PUT", "gone.txt", b"aaa")
    cloud.dav("PUT", "gone.txt", b"bbb")
    assert len(cloud.blob_keys()) == 2
    cloud.dav("DELETE", "gone.txt")
    assert len(cloud.blob_keys()) == 2  # in the trash, versions included
    cloud.api("DELETE", "/api/trash")
    assert cloud.blob_keys() == []


def test_collectors_and_sweeper_keep_a_blob_only_a_version_references(cloud) -> None:
    from tau.files.blobrefs import collect_orphans

    cloud.dav("PUT", "doc.txt", b"the old words")
    cloud.dav("PUT", "doc.txt", b"the new words")
    backend = cloud.registry.blob_backend
    keys = sorted(backend.list_older(time.time() + 60))
    assert len(keys) == 2
    for key in keys:
        age_blob(backend, key, 10 * 86400)
    assert resolve(cloud.registry.db.run("gc", collect_orphans, cloud.tree.blobs.sync)) == 0
    assert resolve(BlobSweeper(cloud.registry, 3600, 3600).run_once()) == 0
    assert sorted(backend.list_older(time.time() + 60)) == keys
    fid = _fid(cloud, "/doc.txt")
    [v] = _versions(cloud, fid)
    assert cloud.api("GET", f"/api/files/{fid}/versions/{v['id']}").body == b"the old words"


def test_a_version_sharing_content_with_another_file_survives_its_deletion(cloud) -> None:
    cloud.dav("PUT", "a.txt", b"shared bytes")
    cloud.dav("PUT", "b.txt", b"shared bytes")
    cloud.dav("PUT", "a.txt", b"changed")  # a's version and b point at the same blob
    cloud.dav("DELETE", "b.txt")
    cloud.api("DELETE", "/api/trash")
    fid = _fid(cloud, "/a.txt")
    [v] = _versions(cloud, fid)
    assert cloud.api("GET", f"/api/files/{fid}/versions/{v['id']}").body == b"shared bytes"
