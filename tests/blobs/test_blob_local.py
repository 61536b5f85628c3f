"""LocalBackend: key confinement, atomic durable commit, dedupe, cleanup, health check."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tau.blobs import BlobNotFound, BlobStoreUnavailable, InvalidBlobKey, LocalBackend
from tau.blobs import local as local_module

KEY = "ab" + "cd" + "0" * 60
BAD_KEYS = [
    "../x", "/etc/passwd", "ab/../../../etc/passwd", KEY.upper(), "A" * 64, KEY[:-1], KEY + "0",
    KEY + "\n", "g" * 64, "", "." * 64, "/" + KEY[1:], "..%2f" + KEY[5:],
]


def put(backend: LocalBackend, key: str, data: bytes) -> bool:
    upload = backend.new_upload()
    upload.write(data)
    return upload.commit(key)


def test_layout_and_read(backend: LocalBackend) -> None:
    assert put(backend, KEY, b"hello world")
    assert (backend.root / "ab" / KEY).read_bytes() == b"hello world"
    assert backend.exists(KEY) and backend.size(KEY) == 11
    assert b"".join(backend.read_range(KEY, 0)) == b"hello world"
    assert b"".join(backend.read_range(KEY, 6, 3)) == b"wor"
    assert b"".join(backend.read_range(KEY, 6, 100)) == b"world"
    assert b"".join(backend.read_range(KEY, 50, 5)) == b""
    assert os.listdir(backend.tmp) == []
    assert (backend.root / "ab" / KEY).stat().st_mode & 0o077 == 0


def test_blobs_of_the_two_level_layout_are_still_served(backend: LocalBackend) -> None:
    """Stores written before the one-level layout keep working: read, size, exists, dedup, delete."""
    legacy = backend.root / "ab" / "cd" / KEY
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"old blob")
    assert backend.exists(KEY) and backend.size(KEY) == 8
    assert b"".join(backend.read_range(KEY, 4)) == b"blob"
    src = backend.open_range(KEY, 0, 3)
    buf = bytearray(3)
    assert src.readinto(memoryview(buf)) == 3 and buf == b"old"
    src.close()
    assert put(backend, KEY, b"old blob") is False  # deduplicated against the old copy
    assert not (backend.root / "ab" / KEY).exists()
    backend.delete(KEY)
    assert not backend.exists(KEY) and not legacy.exists()


def test_large_read_comes_in_pieces(backend: LocalBackend) -> None:
    data = os.urandom(local_module.READ_BLOCK * 2 + 5)
    put(backend, KEY, data)
    pieces = list(backend.read_range(KEY, 1))
    assert len(pieces) == 3 and b"".join(pieces) == data[1:]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_cannot_escape_root(backend: LocalBackend, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        backend.path_for(key)
    with pytest.raises(InvalidBlobKey):
        backend.read_range(key, 0)
    with pytest.raises(InvalidBlobKey):
        backend.size(key)
    with pytest.raises(InvalidBlobKey):
        backend.exists(key)
    with pytest.raises(InvalidBlobKey):
        backend.delete(key)
    upload = backend.new_upload()
    upload.write(b"x")
    with pytest.raises(InvalidBlobKey):
        upload.commit(key)
    assert [p for p in backend.root.rglob("*") if p.is_file()] == []


def test_non_string_key_rejected(backend: LocalBackend) -> None:
    with pytest.raises(InvalidBlobKey):
        backend.path_for(b"0" * 64)  # type: ignore[arg-type]


def test_missing_blob(backend: LocalBackend) -> None:
    with pytest.raises(BlobNotFound):
        list(backend.read_range(KEY, 0))
    with pytest.raises(BlobNotFound):
        backend.size(KEY)
    with pytest.raises(KeyError):  # BlobNotFound is a KeyError too
        backend.size(KEY)
    assert not backend.exists(KEY)
    backend.delete(KEY)  # idempotent


def test_dedupe_keeps_first_copy(backend: LocalBackend) -> None:
    assert put(backend, KEY, b"first")
    assert not put(backend, KEY, b"second")
    assert b"".join(backend.read_range(KEY, 0)) == b"first"
    assert os.listdir(backend.tmp) == []


def test_abort_and_gc_leave_nothing(backend: LocalBackend, files: Any) -> None:
    upload = backend.new_upload()
    upload.write(b"data")
    assert len(os.listdir(backend.tmp)) == 1
    upload.abort()
    upload.abort()
    assert files(backend) == []
    upload = backend.new_upload()
    upload.write(b"data")
    del upload
    gc.collect()
    assert files(backend) == []


def test_abort_after_commit_is_noop(backend: LocalBackend) -> None:
    upload = backend.new_upload()
    upload.write(b"data")
    upload.commit(KEY)
    upload.abort()
    assert backend.exists(KEY)
    with pytest.raises(ValueError):
        upload.write(b"more")


def test_delete(backend: LocalBackend) -> None:
    put(backend, KEY, b"x")
    backend.delete(KEY)
    assert not backend.exists(KEY)


def test_commit_fsyncs_file_and_dir_around_rename(backend: LocalBackend,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    monkeypatch.setattr(local_module, "_fsync_dir",
                        lambda p: events.append(f"dir:{Path(p).relative_to(backend.root)}"))
    put(backend, KEY, b"x")
    assert events == ["fsync", "dir:.", "replace", "dir:ab"]
    events.clear()
    put(backend, "ab" + "1" * 62, b"y")  # the folder exists: two fsyncs, file then folder
    assert events == ["fsync", "replace", "dir:ab"]


def test_failed_commit_removes_temp(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch,
                                    files: Any) -> None:
    def broken(a: Any, b: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    upload = backend.new_upload()
    upload.write(b"x")
    with pytest.raises(OSError):
        upload.commit(KEY)
    assert files(backend) == []


def test_sweep_tmp_removes_only_old_files(backend: LocalBackend) -> None:
    old, new = backend.tmp / "up-old", backend.tmp / "up-new"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 2 * 86400
    os.utime(old, (past, past))
    live = backend.new_upload()
    assert backend.sweep_tmp() == 1
    assert sorted(os.listdir(backend.tmp)) == sorted(["up-new", os.path.basename(live._tmp.path)])
    live.abort()


def test_check(tmp_path: Path) -> None:
    LocalBackend(tmp_path / "ok").check()
    missing = LocalBackend(tmp_path / "nope" / "blobs")  # parent missing: not created
    with pytest.raises(BlobStoreUnavailable, match="does not exist"):
        missing.check()
    broken = LocalBackend(tmp_path / "broken")
    os.rmdir(broken.tmp)
    broken.tmp.write_bytes(b"a file where tmp/ should be")
    with pytest.raises(BlobStoreUnavailable, match="not writable"):
        broken.check()


def test_create_false_does_not_create(tmp_path: Path) -> None:
    LocalBackend(tmp_path / "blobs", create=False)
    assert not (tmp_path / "blobs").exists()
