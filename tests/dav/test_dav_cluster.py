"""Two nodes, one database (issue 9): a WebDAV lock taken on one node binds every node.

Node A and node B are two registries with their own DavServer over the same database and data
folder (the cluster's shared blob store), each on its own fake clock; every test runs on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tau.dav.lockdb import delete_within, insert_lock, key_text, select_locks, text_key
from tau.dav.locks import Lock
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine
from tests.support.harness import add_user, make_registry

from .conftest import ALICE, BOB, PASSWORD, _mod

LIMITS = {"requests_per_minute_ip": "0", "requests_per_hour_user": "0"}
EXCLUSIVE = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
             "</D:locktype><D:owner>node-a</D:owner></D:lockinfo>")


class Node(_mod.Cloud):  # type: ignore[misc, name-defined]
    """A TauCloud node; the users are added once, by the first node."""

    def __init__(self, registry: Any, first: bool) -> None:
        from tau.files import service as files_service
        from tau.http import service as http_service
        from tests.support.http import FakeHttpClient

        self.registry = registry
        host = _mod.Host(registry)
        http_service.install(registry, host)
        files_service.install(registry, host)
        self.site = host.http.site
        self.client = FakeHttpClient(self.site)
        if first:
            add_user(registry, ALICE, PASSWORD)
            add_user(registry, BOB, PASSWORD)
        self.tree = registry.files_tree
        self.dav_server = registry.files_dav

    def advance(self, seconds: float) -> None:
        self.registry.reactor.advance(seconds)


@pytest.fixture
def nodes(tmp_path: Path, db_url: str) -> Any:
    a = Node(make_registry(tmp_path / "tau", db_url, limits=LIMITS), True)
    b = Node(make_registry(tmp_path / "tau", db_url, limits=LIMITS), False)
    # each fake clock started at the wall clock when its node was made; under load the second can
    # start seconds later, so A catches up and the two nodes agree on the time
    a.advance(b.registry.reactor.seconds() - a.registry.reactor.seconds())
    yield a, b
    a.registry.db.close()
    b.registry.db.close()


def lock(node: Node, path: str, body: str = EXCLUSIVE, user: str = ALICE, **headers: str) -> Any:
    return node.dav("LOCK", path, body, user=user, headers=headers)


def token_of(response: Any) -> str:
    assert response.status in (200, 201), response.body
    return str(response.header("lock-token")).strip("<>")


def test_lock_on_a_put_with_token_on_b(nodes) -> None:
    a, b = nodes
    assert a.dav("PUT", "doc.odt", b"v1").status == 201
    token = token_of(lock(a, "doc.odt"))
    assert b.dav("PUT", "doc.odt", b"v2").status == 423
    assert b.dav("PUT", "doc.odt", b"v2", headers={"If": f"(<{token}>)"}).status == 204
    assert b.dav("DELETE", "doc.odt").status == 423
    assert b.dav("PROPPATCH", "doc.odt", '<D:propertyupdate xmlns:D="DAV:"/>').status == 423
    assert a.dav("GET", "doc.odt").body == b"v2"


def test_unlock_on_b_frees_it_for_a(nodes) -> None:
    a, b = nodes
    a.dav("PUT", "doc.odt", b"v1")
    token = token_of(lock(a, "doc.odt"))
    assert a.dav("PUT", "doc.odt", b"x").status == 423
    assert b.dav("UNLOCK", "doc.odt", headers={"Lock-Token": f"<{token}>"}).status == 204
    assert a.dav("PUT", "doc.odt", b"x").status == 204
    assert a.dav("UNLOCK", "doc.odt", headers={"Lock-Token": f"<{token}>"}).status == 409


def test_second_exclusive_lock_on_b_is_refused(nodes) -> None:
    a, b = nodes
    a.dav("MKCOL", "dir")
    a.dav("PUT", "dir/f", b"1")
    token_of(lock(a, "dir/f"))
    r = lock(b, "dir/f")
    assert r.status == 423 and b"no-conflicting-lock" in r.body
    shared = EXCLUSIVE.replace("exclusive", "shared")
    assert lock(b, "dir/f", shared).status == 423
    assert lock(b, "dir", Depth="infinity").status == 423  # a depth-infinity lock above it conflicts
    assert lock(b, "dir", Depth="0").status == 200  # a depth-0 lock on the parent does not


def test_shared_locks_on_both_nodes(nodes) -> None:
    a, b = nodes
    a.dav("PUT", "s", b"1")
    shared = EXCLUSIVE.replace("exclusive", "shared")
    t1, t2 = token_of(lock(a, "s", shared)), token_of(lock(b, "s", shared))
    assert t1 != t2
    assert lock(a, "s").status == 423
    assert a.dav("PUT", "s", b"2", headers={"If": f"(<{t1}>)"}).status == 423  # t2 not submitted
    assert a.dav("PUT", "s", b"2", headers={"If": f"(<{t1}>) (<{t2}>)"}).status == 204


def test_lockdiscovery_on_b_shows_the_lock_from_a(nodes) -> None:
    a, b = nodes
    a.dav("MKCOL", "dir")
    a.dav("PUT", "dir/f", b"1")
    token = token_of(lock(a, "dir/f", Timeout="Second-600"))
    body = '<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>'
    for depth, path in (("0", "dir/f"), ("1", "dir")):
        r = b.dav("PROPFIND", path, body, headers={"Depth": depth})
        assert r.status == 207
        text = r.body.decode()
        assert token in text and "node-a" in text and "<D:exclusive/>" in text
        assert re.search(r"<D:timeout>Second-(599|600)</D:timeout>", text)  # the nodes' clocks differ a little


def test_refresh_on_b_and_expiry_by_the_clock(nodes) -> None:
    a, b = nodes
    a.dav("PUT", "e", b"1")
    token = token_of(lock(a, "e", Timeout="Second-60"))
    a.advance(50)
    b.advance(50)
    assert lock(b, "e", "", If=f"(<{token}>)", Timeout="Second-100").status == 200
    a.advance(60)
    b.advance(60)
    assert a.dav("PUT", "e", b"2").status == 423  # refreshed on B: still locked on A
    a.advance(41)
    b.advance(41)
    assert a.dav("PUT", "e", b"3").status == 204  # expired
    assert b.dav("PUT", "e", b"4").status == 204
    token_of(lock(b, "e"))  # an expired lock does not conflict


def test_bob_cannot_use_alices_token(nodes) -> None:
    a, b = nodes
    a.dav("MKCOL", "team")
    a.dav("PUT", "team/plan", b"1")
    folder = a.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    r = a.api("POST", "/api/shares", json.dumps({"file_id": folder, "user": BOB, "permission": "write"}).encode(),
              headers={"Content-Type": "application/json"})
    assert r.status == 201, r.body
    token = token_of(lock(a, "team/plan"))
    path = f"/dav/files/{BOB}/Shared/team/plan"
    assert b.dav("PUT", path, b"bob", user=BOB).status == 423
    assert b.dav("PUT", path, b"bob", user=BOB, headers={"If": f"(<{token}>)"}).status == 423
    assert b.dav("UNLOCK", path, user=BOB, headers={"Lock-Token": f"<{token}>"}).status == 403
    assert b.dav("PUT", "team/plan", b"alice", headers={"If": f"(<{token}>)"}).status == 204


def test_rest_api_on_b_honours_a_lock_from_a(nodes) -> None:
    a, b = nodes
    a.dav("PUT", "r.txt", b"1")
    token_of(lock(a, "r.txt"))
    assert b.api("POST", "/api/files?path=/r.txt", b"2").status == 423
    fid = b.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    assert b.api("DELETE", f"/api/files/{fid}").status == 423


def test_delete_and_move_on_b_drop_locks_for_everyone(nodes) -> None:
    a, b = nodes
    a.dav("MKCOL", "d")
    a.dav("PUT", "d/x", b"1")
    token = token_of(lock(a, "d/x"))
    base = f"/dav/files/{ALICE}/"
    assert b.dav("MOVE", "d", headers={"Destination": base + "e"}).status == 423
    assert b.dav("MOVE", "d", headers={"Destination": base + "e", "If": f"<{base}d/x> (<{token}>)"}).status == 201
    assert a.dav("PUT", "e/x", b"2").status == 204  # the lock did not follow the move
    a.dav("PUT", "d", b"new")
    assert a.dav("PUT", "d", b"again").status == 204


def test_key_text_round_trip_and_ranges(tmp_path: Path, db_url: str) -> None:
    for key in [(), ("a",), ("a@b", "dir/with/slashes", "100%", "x_y")]:
        assert text_key(key_text(key)) == key
    db = SyncDatabase(create_engine(make_registry(tmp_path / "tau", db_url).config.database_url))
    try:
        def put(key: tuple[str, ...], infinite: bool = False) -> Lock | None:
            lk = Lock(f"t{key!r}", key, "/h", True, infinite, "", ALICE, 60, 2e9)
            return db.run("t", insert_lock, "/t", lk, 1e9)

        for key in [("u", "a"), ("u", "a", "b"), ("u", "a0"), ("u", "a-"), ("u", "ab"), ("v", "a")]:
            assert put(key) is None
        within = {lk.key for lk in db.run("t", select_locks, "/t", [], [("u", "a")], 1e9)}
        assert within == {("u", "a"), ("u", "a", "b")}
        covering = {lk.key for lk in db.run("t", select_locks, "/t", [("u", "a", "b", "c")], [], 1e9)}
        assert covering == {("u", "a"), ("u", "a", "b")}
        assert db.run("t", select_locks, "/other", [("u", "a")], [], 1e9) == []
        assert db.run("t", select_locks, "/t", [("u", "a")], [], 3e9) == []  # expired
        assert put(("u",), infinite=True) is not None  # conflicts with the locks below
        db.run("t", delete_within, "/t", ("u", "a"))
        left = {lk.key for lk in db.run("t", select_locks, "/t", [], [()], 1e9)}
        assert left == {("u", "a0"), ("u", "a-"), ("u", "ab"), ("v", "a")}
    finally:
        db.close()


def _race(dbs: list[SyncDatabase], locks: list[Lock]) -> list[Lock | None]:
    """Grant ``locks[i]`` on ``dbs[i]``, all released at the same moment; the conflicts found."""
    results: list[Lock | None] = [None] * len(locks)
    barrier = threading.Barrier(len(locks))

    def grant(i: int) -> None:
        barrier.wait()
        results[i] = dbs[i].run("grant", insert_lock, "/t", locks[i], 1e9)

    threads = [threading.Thread(target=grant, args=(i,)) for i in range(len(locks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_grants_on_two_connections_admit_one(tmp_path: Path, db_url: str) -> None:
    """Two nodes granting conflicting exclusive locks at the same moment: exactly one wins."""
    url = make_registry(tmp_path / "tau", db_url).config.database_url
    dbs = [SyncDatabase(create_engine(url)) for _ in range(2)]
    try:
        for n in range(20):
            key = (f"u{n}", "f")
            locks = [Lock(f"tok-{n}-0", key, "/h", True, False, "", ALICE, 60, 2e9),
                     Lock(f"tok-{n}-1", key[:1], "/h", True, True, "", ALICE, 60, 2e9)]
            results = _race(dbs, locks)
            assert sorted(r is None for r in results) == [False, True], n
    finally:
        for db in dbs:
            db.close()
