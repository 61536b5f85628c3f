"""Fixtures for the blob store tests: a temp-dir backend, keys, and reactor-free async helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from tau.blobs import BlobStore, LocalBackend, SyncBlobStore, pack
from tau.blobs.local import LocalUpload

MASTER = bytes(range(32))
ADDRESS = bytes(range(32, 64))


def run_sync(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """run_in_thread double: runs at once in this thread, so no reactor is needed."""
    return maybeDeferred(f, *args)


class CountingBackend(LocalBackend):
    """LocalBackend that records every ranged read and how many bytes it yielded; every blob is
    a file (packs of small blobs: test_blob_pack.py).

    With ``upload_limit``, uploads fail (ENOSPC) once they pass that many bytes, like a full disk.
    """

    def __init__(self, path: str | os.PathLike[str], upload_limit: int | None = None) -> None:
        super().__init__(path, pack_threshold=0)  # these tests pin the file-per-blob layout
        self.reads: list[tuple[int, int | None]] = []
        self.bytes_read = 0
        self.upload_limit = upload_limit

    def new_upload(self) -> LocalUpload:
        upload = super().new_upload()
        if self.upload_limit is not None:
            real, limit, written = upload.write, self.upload_limit, [0]

            def write(data: bytes) -> None:
                written[0] += len(data)
                if written[0] > limit:
                    raise OSError(28, "No space left on device")
                real(data)

            upload.write = write  # type: ignore[method-assign]
        return upload

    def read_range(self, key: str, offset: int, length: int | None = None) -> Iterator[bytes]:
        pieces = super().read_range(key, offset, length)  # validates eagerly, like the real one
        assert isinstance(pieces, Generator)
        self.reads.append((offset, length))
        return self._count(pieces)

    def _count(self, pieces: Generator[bytes, None, None]) -> Iterator[bytes]:
        with closing(pieces):
            for piece in pieces:
                self.bytes_read += len(piece)
                yield piece

    def reset(self) -> None:
        self.reads.clear()
        self.bytes_read = 0


@pytest.fixture
def backend(tmp_path: Any) -> CountingBackend:
    return CountingBackend(tmp_path / "blobs")


@pytest.fixture
def make_backend(tmp_path: Any) -> Callable[..., CountingBackend]:
    """CountingBackend(tmp_path / name, upload_limit)."""

    def make(name: str, upload_limit: int | None = None) -> CountingBackend:
        return CountingBackend(tmp_path / name, upload_limit)

    return make


@pytest.fixture
def make_store() -> Callable[..., BlobStore]:
    """BlobStore with the test keys and the synchronous runner unless told otherwise."""

    def make(backend: LocalBackend, master: bytes = MASTER, address: bytes = ADDRESS,
             runner: Callable[..., Deferred[Any]] = run_sync) -> BlobStore:
        return BlobStore(backend, master, address, runner)

    return make


@pytest.fixture
def address_key() -> bytes:
    return ADDRESS


@pytest.fixture
def sync_store(backend: CountingBackend) -> SyncBlobStore:
    return SyncBlobStore(backend, MASTER, ADDRESS)


@pytest.fixture
def store(backend: CountingBackend) -> BlobStore:
    return BlobStore(backend, MASTER, ADDRESS, run_sync)


@pytest.fixture
def result() -> Callable[[Deferred[Any]], Any]:
    """Resolve an already-fired Deferred: its value, or raise its failure."""

    def resolve(d: Deferred[Any]) -> Any:
        out: list[Any] = []
        d.addBoth(out.append)
        assert out, "Deferred has not fired"
        if isinstance(out[0], Failure):
            out[0].raiseException()
        return out[0]

    return resolve


def stored_files(backend: LocalBackend) -> list[str]:
    """Every file under the backend root, tmp included (relative paths)."""
    return sorted(str(p.relative_to(backend.root)) for p in backend.root.rglob("*") if p.is_file())


@pytest.fixture
def files() -> Callable[[LocalBackend], list[str]]:
    return stored_files


def age_blob(backend: LocalBackend, key: str, seconds: float) -> None:
    """Make ``key``'s blob look written ``seconds`` ago: its file's mtime, or its pack record's
    time (rewritten in place, crc and all, then the packs rescanned)."""
    then = time.time() - seconds
    loc = backend.packs.find(key)
    if loc is None:
        os.utime(backend.path_for(key), (then, then))
        return
    path = backend.packs.path(loc.pack)
    start = loc.offset - pack.HEAD.size
    with open(path, "r+b") as fh:
        fh.seek(start)
        rec = fh.read(pack.HEAD.size + loc.length)
        _, kind, raw, _, _, _ = pack.HEAD.unpack(rec[:pack.HEAD.size])
        fh.seek(start)
        fh.write(pack.record(kind, raw, rec[pack.HEAD.size:], int(then)))
    backend.packs.reload()
