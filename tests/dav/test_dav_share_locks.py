"""Issue 13 item 5: a share recipient's DAV locks never lock the owner out of her own files.

Attacks through DAV bytes on both engines: a read-only recipient LOCKs (403), a read-write
recipient's lock does not block the owner's PUT/DELETE/MOVE/UNLOCK, revoking or downgrading the
share drops the recipient's locks, and ``Timeout: Infinite`` is granted as ``[dav] max_lock_timeout``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import add_user, make_registry

from .conftest import ALICE, BOB, PASSWORD, _mod

CAROL = "carol@example.test"
JSON = {"Content-Type": "application/json"}
INFO = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
        "</D:locktype><D:owner>{who}</D:owner></D:lockinfo>")
BASE = f"http://localhost/dav/files/{ALICE}/"


def _share(cloud: Any, path: str, user: str, permission: str) -> str:
    r = cloud.api("GET", "/api/files?path=/")
    assert r.status == 200, (r.status, r.body)
    items = r.json()["items"]
    fid = next(i["id"] for i in items if i["name"] == path)
    r = cloud.api("POST", "/api/shares", json.dumps({"file_id": fid, "user": user, "permission": permission}).encode(),
                  headers=JSON)
    assert r.status == 201, r.body
    return str(r.json()["id"])


def _lock(cloud: Any, path: str, user: str, timeout: str = "Infinite", depth: str | None = None) -> Any:
    headers = {"Timeout": timeout, **({"Depth": depth} if depth else {})}
    return cloud.dav("LOCK", path, INFO.format(who=user), user=user, headers=headers)


def _granted(r: Any) -> int:
    found = re.search(rb"<D:timeout>Second-(\d+)</D:timeout>", r.body)
    assert found, r.body
    return int(found.group(1))


@pytest.fixture
def proj(cloud: Any) -> Any:
    """alice's folder proj/ with spec.md, and carol as a third user."""
    add_user(cloud.registry, CAROL, PASSWORD)
    # the fake clock started before the users' password stamps (wall clock): without this a token
    # issued in the same test can predate its user's password change by a second (401)
    cloud.registry.reactor.advance(2)
    assert cloud.dav("MKCOL", "proj").status == 201
    assert cloud.dav("PUT", "proj/spec.md", b"# spec").status == 201
    return cloud


def test_read_only_recipient_cannot_lock(proj: Any) -> None:
    _share(proj, "proj", BOB, "read")
    shared = f"/dav/files/{BOB}/Shared/proj/"
    for path in (shared + "spec.md", shared, shared + "new.txt"):
        r = _lock(proj, path, BOB)
        assert r.status == 403, (path, r.status, r.body)
        assert b"need-privileges" in r.body
    assert proj.dav("GET", shared + "new.txt", user=BOB).status == 404  # nothing was created
    assert proj.dav("PUT", "proj/spec.md", b"owner edit").status == 204
    r = _lock(proj, "proj/spec.md", ALICE)  # no lock of bob's is in the way
    assert r.status == 200


def test_owner_writes_through_recipient_lock(proj: Any) -> None:
    _share(proj, "proj", BOB, "write")
    _share(proj, "proj", CAROL, "write")
    shared = f"/dav/files/{BOB}/Shared/proj/"
    r = _lock(proj, shared + "spec.md", BOB)
    assert r.status == 200
    token = r.header("lock-token").strip("<>")
    # another recipient is still held off by bob's lock (RFC 4918 §7): only the owner overrides it
    assert proj.dav("PUT", f"/dav/files/{CAROL}/Shared/proj/spec.md", b"carol", user=CAROL).status == 423
    assert proj.dav("PUT", "proj/spec.md", b"owner edit").status == 204
    # the owner's write broke bob's lock: his client learns it instead of overwriting her edit
    assert proj.dav("PUT", shared + "spec.md", b"bob", user=BOB, headers={"If": f"(<{token}>)"}).status == 412
    assert proj.dav("GET", "proj/spec.md").body == b"owner edit"

    # UNLOCK with the token of bob's lock, by the owner
    token = _lock(proj, shared + "spec.md", BOB).header("lock-token")
    assert proj.dav("UNLOCK", f"/dav/files/{CAROL}/Shared/proj/spec.md", user=CAROL,
                    headers={"Lock-Token": token}).status == 403
    assert proj.dav("UNLOCK", "proj/spec.md", headers={"Lock-Token": token}).status == 204
    assert _lock(proj, "proj/spec.md", ALICE).status == 200  # the lock is really gone
    proj.dav("UNLOCK", "proj/spec.md", headers={"Lock-Token": token})


def test_owner_delete_and_move_through_recipient_locks(proj: Any) -> None:
    _share(proj, "proj", BOB, "write")
    shared = f"/dav/files/{BOB}/Shared/proj/"
    assert proj.dav("PUT", "proj/other.md", b"o").status == 201
    assert _lock(proj, shared, BOB, depth="infinity").status == 200  # the whole shared folder
    assert proj.dav("DELETE", "proj/spec.md").status == 204  # a member of the locked folder
    assert _lock(proj, shared + "other.md", BOB).status == 200  # the owner's DELETE broke the folder lock
    assert proj.dav("MOVE", "proj/other.md", headers={"Destination": BASE + "moved.md"}).status == 201
    assert proj.dav("GET", "moved.md").body == b"o"
    assert _lock(proj, shared + "x.md", BOB).status in (200, 201)
    assert proj.dav("DELETE", "proj").status == 204
    assert proj.dav("PROPFIND", shared, user=BOB, headers={"Depth": "0"}).status == 404


def test_revoking_a_share_drops_its_locks(proj: Any) -> None:
    share_id = _share(proj, "proj", BOB, "write")
    shared = f"/dav/files/{BOB}/Shared/proj/"
    assert _lock(proj, shared + "spec.md", BOB).status == 200
    assert _lock(proj, "proj/spec.md", ALICE).status == 423  # held: the owner must UNLOCK to lock
    assert proj.api("DELETE", f"/api/shares/{share_id}").status == 204
    r = _lock(proj, "proj/spec.md", ALICE)
    assert r.status == 200, r.body
    proj.dav("UNLOCK", "proj/spec.md", headers={"Lock-Token": r.header("lock-token")})

    # downgrading a share to read-only drops the locks too
    _share(proj, "proj", BOB, "write")
    assert _lock(proj, shared + "spec.md", BOB).status == 200
    _share(proj, "proj", BOB, "read")
    r = _lock(proj, "proj/spec.md", ALICE)
    assert r.status == 200, r.body
    assert proj.dav("UNLOCK", "proj/spec.md", headers={"Lock-Token": r.header("lock-token")}).status == 204
    assert proj.dav("PUT", shared + "spec.md", b"x", user=BOB).status == 403


def test_infinite_timeout_is_capped(proj: Any) -> None:
    r = _lock(proj, "proj/spec.md", ALICE, "Infinite, Second-4100000000")
    assert r.status == 200 and _granted(r) == 3600
    token = r.header("lock-token").strip("<>")
    r = proj.dav("LOCK", "proj/spec.md", headers={"If": f"(<{token}>)", "Timeout": "Second-999999"})
    assert r.status == 200 and _granted(r) == 3600
    proj.registry.reactor.advance(3601)
    assert proj.dav("PUT", "proj/spec.md", b"after").status == 204  # the lock expired


def test_max_lock_timeout_is_configurable(tmp_path: Path, db_url: str) -> None:
    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "0",
                                                               "requests_per_hour_user": "0"},
                             dav={"max_lock_timeout": "600"})
    try:
        cloud = _mod.Cloud(registry)
        assert cloud.dav("PUT", "f.txt", b"1").status == 201
        r = _lock(cloud, "f.txt", ALICE)
        assert r.status == 200 and _granted(r) == 600
        r = _lock(cloud, "g.txt", ALICE, "Second-60")
        assert r.status == 201 and _granted(r) == 60
    finally:
        registry.db.close()


def test_owner_rest_writes_through_recipient_lock(proj: Any) -> None:
    _share(proj, "proj", BOB, "write")
    shared = f"/dav/files/{BOB}/Shared/proj/"
    assert _lock(proj, shared + "spec.md", BOB).status == 200
    # bob (a REST client cannot send lock tokens) is held off by his own lock; the owner is not
    assert proj.api("POST", "/api/files?path=/Shared/proj/spec.md", b"bob", user=BOB).status == 423
    r = proj.api("POST", "/api/files?path=/proj/spec.md", b"owner via REST")
    assert r.status == 201, r.body
    assert proj.dav("GET", "proj/spec.md").body == b"owner via REST"
    assert _lock(proj, shared + "spec.md", BOB).status == 200  # the old lock was broken
    fid = r.json()["id"]
    assert proj.api("DELETE", f"/api/files/{fid}").status == 204
    # the owner's own DAV lock still holds off her REST writes (she cannot submit its token)
    assert proj.dav("PUT", "proj/mine.md", b"m").status == 201
    assert _lock(proj, "proj/mine.md", ALICE).status == 200
    assert proj.api("POST", "/api/files?path=/proj/mine.md", b"x").status == 423


def test_admin_lists_and_removes_locks_in_a_users_tree(proj: Any) -> None:
    from types import SimpleNamespace

    from tau.admin import davlocks

    davlocks.register(proj.registry, SimpleNamespace(route=proj.site.resource.route))
    add_user(proj.registry, "dave@example.test", PASSWORD, is_admin=True)
    proj.registry.reactor.advance(2)
    _share(proj, "proj", BOB, "write")
    bobs = _lock(proj, f"/dav/files/{BOB}/Shared/proj/spec.md", BOB).header("lock-token").strip("<>")
    assert proj.dav("PUT", "proj/own.md", b"o").status == 201
    assert _lock(proj, "proj/own.md", ALICE).status == 200
    assert proj.api("GET", f"/api/admin/dav-locks?user={ALICE}", user=BOB).status == 403
    assert proj.api("DELETE", f"/api/admin/dav-locks?user={ALICE}", user=BOB).status == 403
    r = proj.api("GET", f"/api/admin/dav-locks?user={ALICE}", user="dave@example.test")
    assert r.status == 200
    assert sorted(i["principal"] for i in r.json()["items"]) == [ALICE, BOB]
    r = proj.api("DELETE", f"/api/admin/dav-locks?user={ALICE}&token={bobs}", user="dave@example.test")
    assert r.status == 200 and r.json()["removed"] == 1
    assert proj.api("DELETE", f"/api/admin/dav-locks?user={BOB}&token={bobs}", user="dave@example.test").status == 404
    assert proj.api("DELETE", f"/api/admin/dav-locks?user={ALICE}", user="dave@example.test").json()["removed"] == 1
    assert proj.api("GET", f"/api/admin/dav-locks?user={ALICE}", user="dave@example.test").json()["items"] == []
    assert _lock(proj, "proj/spec.md", ALICE).status == 200  # nothing holds it any more
