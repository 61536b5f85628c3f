"""Issue 13 item 10: blobs left without rows (kill -9 between the blob and its row) are swept after
``[blobs] orphan_grace``, without racing writers; on SQLite and PostgreSQL.

Blobs are made the way the services make them (DAV PUT of a file, mail APPEND, a raw blob
write whose row never commits) and aged by their modification time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tau.blobs import orphans
from tau.blobs.sweeper import BlobSweeper
from tau.files.blobrefs import BlobMissing, ref_blob
from tau.mail.store import MailStore
from tests.blobs.conftest import age_blob
from tests.support.harness import make_registry, resolve

ALICE = "alice@example.test"
GRACE = 3600.0
RAW = (b"From: Bob <bob@remote.test>\r\nTo: Alice <alice@example.test>\r\nSubject: kept\r\n"
       b"Message-ID: <kept@remote.test>\r\n\r\nmail body\r\n")


@pytest.fixture
def cloud(tmp_path: Path, db_url: str) -> Any:
    from tests.files.conftest import Cloud

    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "0",
                                                               "requests_per_hour_user": "0"})
    yield Cloud(registry)
    registry.db.close()


def _age(cloud: Any, key: str, seconds: float) -> None:
    age_blob(cloud.registry.blob_backend, key, seconds)


def _sweep(cloud: Any, grace: float = GRACE) -> int:
    return int(resolve(BlobSweeper(cloud.registry, grace, 3600).run_once()))


def _stored(cloud: Any) -> set[str]:
    return set(cloud.registry.blob_backend.list_older(time.time() + 60))


def test_orphans_past_grace_go_fresh_and_referenced_stay(cloud: Any) -> None:
    backend = cloud.registry.blob_backend
    assert cloud.dav("PUT", "kept.txt", b"file contents").status == 201
    store = MailStore(cloud.registry)
    resolve(store.ensure_defaults(ALICE))
    resolve(store.append(ALICE, "INBOX", RAW))
    referenced = _stored(cloud)
    assert len(referenced) == 2
    # what kill -9 leaves: blobs written, their rows never committed (a file and a mail blob)
    orphan_file = resolve(cloud.tree.blobs.put(b"an upload whose row never committed")).key
    orphan_mail = resolve(cloud.registry.blobs.put(b"a delivery whose row never committed")).key
    in_flight = resolve(cloud.tree.blobs.put(b"a writer still working")).key
    for key in referenced | {orphan_file, orphan_mail}:
        _age(cloud, key, GRACE + 60)
    _age(cloud, in_flight, GRACE - 600)  # younger than the grace period: its row may still come

    assert _sweep(cloud) == 2
    left = _stored(cloud)
    assert left == referenced | {in_flight}
    assert not backend.exists(orphan_file) and not backend.exists(orphan_mail)
    # the referenced ones still read back through the protocols' stores
    assert cloud.dav("GET", "kept.txt").body == b"file contents"
    msgs = cloud.registry.db.sync.run("t", lambda txn: txn.query("SELECT blob_key FROM messages"))
    assert resolve(cloud.registry.blobs.read(msgs[0][0])) == RAW
    # no refcount rows were left behind by the sweep's claims
    rows = cloud.registry.db.sync.run("t", lambda txn: txn.query(
        "SELECT blob_key FROM file_blobs WHERE refs = 0 UNION ALL SELECT blob_key FROM mail_blobs WHERE refs = 0"))
    assert rows == []
    # the writer in flight commits its row after all: the blob is there
    node = cloud.dav("PUT", "late.txt", b"a writer still working")
    assert node.status == 201 and cloud.dav("GET", "late.txt").body == b"a writer still working"


def test_writer_referencing_a_swept_blob_is_refused_not_dangling(cloud: Any) -> None:
    """The race: the sweeper deletes an old unreferenced blob while a deduplicated upload of the
    same bytes references it; the writer's transaction sees the blob gone (BlobMissing)."""
    key = resolve(cloud.tree.blobs.put(b"same bytes")).key
    _age(cloud, key, GRACE + 60)
    assert _sweep(cloud) == 1
    with pytest.raises(BlobMissing):
        cloud.registry.db.sync.run("t", ref_blob, cloud.tree.blobs.sync, key)
    # and the sweep itself, run under a writer's reference, keeps the blob
    key = resolve(cloud.tree.blobs.put(b"other bytes")).key
    _age(cloud, key, GRACE + 60)
    cloud.registry.db.sync.run("t", ref_blob, cloud.tree.blobs.sync, key)
    assert not cloud.registry.db.sync.run("t", orphans.sweep_key, cloud.registry.blob_backend, key)
    assert cloud.registry.blob_backend.exists(key)


def test_one_node_sweeps_at_a_time(cloud: Any) -> None:
    a, b = BlobSweeper(cloud.registry, GRACE, 3600), BlobSweeper(cloud.registry, GRACE, 3600)
    key = resolve(cloud.tree.blobs.put(b"orphan")).key
    _age(cloud, key, GRACE + 60)
    run = cloud.registry.db.sync.run
    now = int(time.time())
    assert run("t", orphans.take_lease, "blob-sweep", b.holder, now, 600)
    assert resolve(a.run_once()) == 0  # b holds the lease
    assert cloud.registry.blob_backend.exists(key)
    assert run("t", orphans.take_lease, "blob-sweep", b.holder, now, 600)  # the holder renews
    assert run("t", orphans.take_lease, "blob-sweep", a.holder, now + 601, 600)  # expired: a takes it
    assert resolve(a.run_once()) == 1
    assert not cloud.registry.blob_backend.exists(key)


def test_sweep_waits_for_a_concurrent_writer_postgres(cloud: Any, db_url: str) -> None:
    """PostgreSQL runs writers concurrently: a writer's uncommitted reference holds the sweep of
    that key until it commits, and the sweep then keeps the blob."""
    if not db_url.startswith("postgres"):
        pytest.skip("SQLite has one writer at a time: the sweep and a writer cannot interleave")
    import threading

    import psycopg2

    key = resolve(cloud.tree.blobs.put(b"being referenced right now")).key
    _age(cloud, key, GRACE + 60)
    writer = psycopg2.connect(db_url)
    try:
        with writer.cursor() as cur:  # a file row's transaction, between its INSERT and COMMIT
            cur.execute("INSERT INTO file_blobs (blob_key, refs) VALUES (%s, 1)", (key,))
        result: list[int] = []
        sweeping = threading.Thread(target=lambda: result.append(_sweep(cloud)))
        sweeping.start()
        sweeping.join(1.5)
        assert sweeping.is_alive() and not result  # waiting on the writer's row
        writer.commit()
        sweeping.join(30)
        assert result == [0]
        assert cloud.registry.blob_backend.exists(key)
    finally:
        writer.close()


def test_a_chat_attachment_blob_stays_and_goes_with_its_row(cloud: Any) -> None:
    """Chat attachments (``msg_attachments``) reference their blobs too: kept while the row is there,
    swept once the uploader deletes it."""
    from tau.messenger import attachment_store
    from tau.messenger.attachments import attachment_blobs
    from tau.messenger.conversations import create_group, user_ids

    blobs = attachment_blobs(cloud.registry)
    key = resolve(blobs.put(b"\x8f opaque chat ciphertext")).key
    run = cloud.registry.db.sync.run
    uid = run("t", user_ids, [ALICE])[ALICE]
    conv = run("t", create_group, uid, [uid], "notes", True, 0)
    run("t", attachment_store.add, "att-1", uid, conv, key, 25, 0)
    _age(cloud, key, GRACE + 60)
    sweeper = BlobSweeper(cloud.registry, GRACE, 3600)  # one node: it keeps its lease between runs
    assert resolve(sweeper.run_once()) == 0 and cloud.registry.blob_backend.exists(key)
    assert run("t", attachment_store.delete_owned, "att-1", uid)
    assert resolve(sweeper.run_once()) == 1 and not cloud.registry.blob_backend.exists(key)
