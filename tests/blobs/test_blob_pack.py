"""Small blobs live in append-only pack files (issue 15 item 2): one record each, concurrent
writers sharing one fsync, torn tails ignored, deletes that survive a restart, and compaction
that reclaims space without losing a live blob even when it is interrupted."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from tau.blobs import LocalBackend, SyncBlobStore
from tau.blobs.pack import PackStore
from tests.blobs.conftest import ADDRESS, MASTER


@pytest.fixture
def store(tmp_path: Path) -> SyncBlobStore:
    return SyncBlobStore(LocalBackend(tmp_path / "blobs"), MASTER, ADDRESS)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _restarted(store: SyncBlobStore) -> SyncBlobStore:
    """The same folder opened by a new process (fresh index, new pack to append to); the old
    one's pack is released as if it had exited (it opens a new one if it writes again)."""
    backend = store.backend
    assert isinstance(backend, LocalBackend)
    backend.packs.close()
    return SyncBlobStore(LocalBackend(backend.root), MASTER, ADDRESS)


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fdatasync calls (the real call still runs)."""
    calls: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    return calls


def test_small_blobs_share_a_pack_large_ones_get_a_file(store: SyncBlobStore) -> None:
    small = [store.put(f"message {i}".encode() * 100) for i in range(20)]
    big = store.put(os.urandom(200 * 1024))
    root = store.backend.root  # type: ignore[attr-defined]
    files = _files(root)
    assert files == sorted([f"packs/{1:08d}.pack", f"{big.key[:2]}/{big.key}"])
    for i, info in enumerate(small):
        assert store.read(info.key) == f"message {i}".encode() * 100
    packed = (root / "packs" / f"{1:08d}.pack").read_bytes()
    assert b"message 0" not in packed  # the pack holds ciphertext only


def test_lone_writer_syncs_once_and_waits_for_nobody(store: SyncBlobStore, syncs: list[int]) -> None:
    store.put(b"warm up")  # opens the pack (its folder entry is synced with fsync, not counted)
    syncs.clear()
    store.put(b"one message")
    assert len(syncs) == 1


def test_concurrent_writers_share_syncs(store: SyncBlobStore, syncs: list[int]) -> None:
    store.put(b"warm up")
    syncs.clear()
    start = threading.Barrier(8)
    done: list[str] = []

    def writer(n: int) -> None:
        start.wait()
        for i in range(25):
            done.append(store.put(f"writer {n} message {i}".encode() * 50).key)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 200
    assert len(syncs) < 200  # each put waited for a sync covering it, most shared one
    again = _restarted(store)
    assert all(again.exists(key) for key in done)


def test_torn_tail_is_ignored_and_writing_goes_on(store: SyncBlobStore) -> None:
    kept = store.put(b"acknowledged before the crash")
    backend = store.backend
    assert isinstance(backend, LocalBackend)
    loc = backend.packs.find(kept.key)
    assert loc is not None
    pack_path = backend.packs.path(loc.pack)
    torn = store.address(b"never acknowledged")
    whole = (b"TPK1\x00" + bytes.fromhex(torn) + (500).to_bytes(4, "big") + bytes(8) + b"half a rec")
    with open(pack_path, "ab") as fh:  # the crash: a record's header and part of its data
        fh.write(whole)
    again = _restarted(store)
    assert again.read(kept.key) == b"acknowledged before the crash"
    assert not again.exists(torn)
    after = again.put(b"written after the restart")
    assert _restarted(again).read(after.key) == b"written after the restart"


def test_corrupt_record_stops_the_scan_of_its_pack(store: SyncBlobStore) -> None:
    first = store.put(b"first")
    second = store.put(b"second")
    backend = store.backend
    assert isinstance(backend, LocalBackend)
    loc = backend.packs.find(second.key)
    assert loc is not None
    with open(backend.packs.path(loc.pack), "r+b") as fh:  # a flipped bit in the last record
        fh.seek(loc.offset + 3)
        byte = fh.read(1)[0]
        fh.seek(loc.offset + 3)
        fh.write(bytes([byte ^ 0x10]))
    again = _restarted(store)
    assert again.read(first.key) == b"first" and not again.exists(second.key)


def test_delete_survives_a_restart_and_content_can_come_back(store: SyncBlobStore) -> None:
    gone = store.put(b"deleted for good")
    back = store.put(b"deleted then stored again")
    store.delete(gone.key)
    store.delete(back.key)
    assert not store.exists(gone.key)
    assert store.put(b"deleted then stored again").key == back.key
    again = _restarted(store)
    assert not again.exists(gone.key)
    assert again.read(back.key) == b"deleted then stored again"  # the tombstone named the old copy only


def test_another_process_sees_new_blobs(store: SyncBlobStore) -> None:
    reader = _restarted(store)
    assert not reader.exists(store.address(b"later"))
    info = store.put(b"later")
    assert reader.read(info.key) == b"later"  # a miss looks at the packs' new tails


def _fill(store: SyncBlobStore, n: int) -> list[Any]:
    return [store.put(f"blob number {i} ".encode() * 40) for i in range(n)]


def test_compaction_reclaims_deleted_space(store: SyncBlobStore) -> None:
    infos = _fill(store, 40)
    for info in infos[:30]:
        store.delete(info.key)
    backend = store.backend
    assert isinstance(backend, LocalBackend)
    old = backend.packs.path(backend.packs.find(infos[35].key).pack)  # type: ignore[union-attr]
    again = _restarted(store)  # the first process's pack is sealed: compactable
    before = old.stat().st_size
    assert again.backend.compact() == 1  # type: ignore[attr-defined]
    assert not old.exists()
    total = sum(p.stat().st_size for p in old.parent.glob("*.pack"))
    assert total < before / 2
    for i, info in enumerate(infos):
        expected = f"blob number {i} ".encode() * 40
        assert _restarted(again).exists(info.key) == (i >= 30)
        if i >= 30:
            assert again.read(info.key) == expected


def test_interrupted_compaction_loses_nothing(store: SyncBlobStore, tmp_path: Path) -> None:
    """A crash after the live records were copied but before the old pack was unlinked: both
    copies are found, the deleted blobs stay deleted."""
    infos = _fill(store, 20)
    for info in infos[:15]:
        store.delete(info.key)
    backend = store.backend
    assert isinstance(backend, LocalBackend)
    old = backend.packs.path(backend.packs.find(infos[19].key).pack)  # type: ignore[union-attr]
    saved = tmp_path / "saved.pack"
    shutil.copy(old, saved)
    again = _restarted(store)
    assert again.backend.compact() == 1  # type: ignore[attr-defined]
    shutil.copy(saved, old)  # as if the unlink never reached the disk
    after = _restarted(again)
    for i, info in enumerate(infos):
        assert after.exists(info.key) == (i >= 15)
    assert after.read(infos[19].key) == f"blob number {19} ".encode() * 40
    assert after.backend.compact() >= 1  # type: ignore[attr-defined]
    assert all(_restarted(after).exists(info.key) == (i >= 15) for i, info in enumerate(infos))


def test_compaction_skips_a_pack_another_process_appends_to(store: SyncBlobStore) -> None:
    infos = _fill(store, 10)
    for info in infos[:9]:
        store.delete(info.key)
    other = PackStore(store.backend.root / "packs")  # type: ignore[attr-defined]
    assert other.compact() == 0  # the first process still holds its pack
    assert store.read(infos[9].key) == f"blob number {9} ".encode() * 40


def test_in_the_daemon_the_next_commit_syncs_the_pack(tmp_path: Path, db_url: str, syncs: list[int]) -> None:
    """Wired to the database (``sync_with_commits``), a put only appends; the write transaction
    that references the blob syncs it before committing, once for every blob appended so far."""
    from tests.support.harness import make_registry, resolve

    registry = make_registry(tmp_path / "tau", db_url)
    try:
        backend = registry.blob_backend
        assert isinstance(backend, LocalBackend) and backend.packs.defer_sync
        blobs = registry.blobs
        resolve(blobs.put(b"warm up"))
        registry.db.sync.run("t", lambda txn: txn.execute("SELECT 1"))
        syncs.clear()
        keys = [resolve(blobs.put(f"pending {i}".encode())).key for i in range(5)]
        assert syncs == []  # appended, not yet synced
        registry.db.sync.run("r", lambda txn: txn.query("SELECT 1"), readonly=True)
        assert syncs == []  # a read commits nothing
        registry.db.sync.run("t", lambda txn: txn.execute("SELECT 1"))  # a write transaction
        assert len(syncs) == 1  # one sync for the five
        assert all(_restarted(SyncBlobStore(backend, MASTER, ADDRESS)).backend.exists(k) for k in keys)
    finally:
        registry.db.close()


def test_a_blob_stored_or_found_inside_a_transaction_is_synced_before_it_commits(
        tmp_path: Path, db_url: str, syncs: list[int]) -> None:
    """The sync before a transaction begins covers blobs written before it; one written inside
    it (a message stored again) or found unsynced by it (the same content, just written by
    another writer) is synced just before the commit."""
    from tests.support.harness import make_registry

    registry = make_registry(tmp_path / "tau", db_url)
    try:
        sync_store = registry.blobs.sync
        packs = registry.blob_backend.packs
        sync_store.put(b"warm up")
        registry.db.sync.run("t", lambda txn: txn.execute("SELECT 1"))
        seen: list[int] = []

        def store_inside(txn: Any) -> None:
            seen.append(len(syncs))
            sync_store.put(b"stored inside the transaction")

        syncs.clear()
        registry.db.sync.run("t", store_inside)
        assert seen == [0] and len(syncs) == 1  # nothing before it began; its own blob before commit

        def other_writer() -> None:
            sync_store.put(b"written by another writer meanwhile")

        def find_inside(txn: Any) -> None:
            t = threading.Thread(target=other_writer)
            t.start()
            t.join()
            seen.append(len(syncs))
            assert packs.find(sync_store.address(b"written by another writer meanwhile")) is not None

        syncs.clear()
        seen.clear()
        registry.db.sync.run("t", find_inside)
        assert seen == [0] and len(syncs) == 1  # found unsynced: synced before the commit
    finally:
        registry.db.close()
