"""One conformance suite for every blob backend: local disk and S3 (a real moto server on loopback).

The same behaviours the local tests pin down — round trip at chunk edges, ranged reads,
deduplication, tamper detection, abort and dropped uploads leaving nothing — run against each
backend through the BlobStore facade, plus the S3 multipart path (parts of 5 MiB).
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from tau.blobs import CHUNK, BlobCorrupt, BlobNotFound, BlobStore, LocalBackend

MASTER = bytes(range(32))
ADDRESS = bytes(range(32, 64))
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 1024 * 1024 + 7]


def _moto_binary() -> str | None:
    found = Path(sys.executable).parent / "moto_server"
    return str(found) if found.exists() else shutil.which("moto_server")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    binary = _moto_binary()
    if binary is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto_server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Env:
    """A backend plus the means to inspect and damage what it stored."""

    def __init__(self, kind: str, backend: Any) -> None:
        self.kind, self.backend = kind, backend

    def stored(self) -> list[str]:
        """Every stored object or file, temporaries included."""
        if self.kind == "local":
            return sorted(str(p.relative_to(self.backend.root)) for p in self.backend.root.rglob("*") if p.is_file())
        names = [o.object_name for o in self.backend.client.list_objects(self.backend.bucket, recursive=True)]
        return sorted(names)

    def pending_multipart(self) -> int:
        if self.kind == "local":
            return 0
        result = self.backend.client._list_multipart_uploads(self.backend.bucket)
        return len(result.uploads)

    def flip_byte(self, key: str, pos: int) -> None:
        if self.kind == "local" and self.backend.packs.find(key) is not None:  # a small blob: in a pack
            loc = self.backend.packs.find(key)
            with open(self.backend.packs.path(loc.pack), "r+b") as fh:
                fh.seek(loc.offset + pos)
                byte = fh.read(1)[0]
                fh.seek(loc.offset + pos)
                fh.write(bytes([byte ^ 1]))
            return
        if self.kind == "local":
            path = self.backend.path_for(key)
            data = bytearray(path.read_bytes())
            data[pos] ^= 1
            path.write_bytes(bytes(data))
            return
        import io

        name = self.backend.object_name(key)
        response = self.backend.client.get_object(self.backend.bucket, name)
        data = bytearray(response.read())
        response.close()
        response.release_conn()
        data[pos] ^= 1
        self.backend.client.put_object(self.backend.bucket, name, io.BytesIO(bytes(data)), len(data))


@pytest.fixture(params=["local", "s3"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    if request.param == "local":
        return Env("local", LocalBackend(tmp_path / "blobs"))
    from tau.blobs.s3 import S3Backend

    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"t{os.urandom(6).hex()}"
    backend = S3Backend(endpoint, "testing", "testing", bucket, secure=False, part_size=5 * 1024 * 1024)
    return Env("s3", backend)


def run_sync(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args)


def resolve(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def store(env: Env) -> BlobStore:
    return BlobStore(env.backend, MASTER, ADDRESS, run_sync)


def write(store: BlobStore, data: bytes, piece: int = 50_000) -> Any:
    writer = store.writer()
    for pos in range(0, len(data), piece):
        resolve(writer.write(data[pos:pos + piece]))
    return resolve(writer.commit())


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(store: BlobStore, size: int) -> None:
    data = os.urandom(size)
    info = write(store, data)
    assert info.size == size
    assert resolve(store.read(info.key)) == data
    assert resolve(store.size(info.key)) == size
    assert resolve(store.exists(info.key))


def test_ranges(store: BlobStore) -> None:
    data = os.urandom(3 * CHUNK + 123)
    key = write(store, data).key
    for start, end in [(0, 1), (CHUNK - 1, CHUNK + 1), (CHUNK * 2 + 5, None), (len(data) - 1, None),
                       (10, 10), (len(data), None)]:
        assert resolve(store.read(key, start, end)) == data[start:end], (start, end)


def test_dedupe(store: BlobStore, env: Env) -> None:
    data = os.urandom(CHUNK * 2)
    a, b = write(store, data), write(store, data, piece=7777)
    assert a == b
    assert len([n for n in env.stored() if "tmp" not in n]) == 1


def test_tamper_detected(store: BlobStore, env: Env) -> None:
    data = os.urandom(CHUNK + 10)
    key = write(store, data).key
    env.flip_byte(key, 200)
    with pytest.raises(BlobCorrupt):
        resolve(store.read(key))


def test_abort_and_dropped_writers_leave_nothing(store: BlobStore, env: Env) -> None:
    writer = store.writer()
    resolve(writer.write(os.urandom(CHUNK * 3)))
    resolve(writer.abort())
    dropped = store.writer()
    resolve(dropped.write(os.urandom(CHUNK * 2)))
    del dropped
    gc.collect()
    assert env.stored() == [] or env.stored() == ["tmp"] or all(n.startswith("tmp") for n in env.stored())
    assert env.pending_multipart() == 0


def test_missing_and_delete(store: BlobStore) -> None:
    key = write(store, b"x" * 100).key
    resolve(store.delete(key))
    resolve(store.delete(key))  # idempotent
    with pytest.raises(BlobNotFound):
        resolve(store.read(key))
    assert not resolve(store.exists(key))


def test_check(store: BlobStore) -> None:
    resolve(store.check())


def test_s3_multipart_streams_parts_and_cleans_up(env: Env) -> None:
    if env.kind != "s3":
        pytest.skip("S3 only")
    store = BlobStore(env.backend, MASTER, ADDRESS, run_sync)
    data = os.urandom(11 * 1024 * 1024 + 5)  # three 5 MiB parts of ciphertext
    info = write(store, data, piece=1024 * 1024)
    assert resolve(store.read(info.key, 6 * 1024 * 1024, 6 * 1024 * 1024 + 10)) == data[6 * 1024 * 1024:][:10]
    assert resolve(store.read(info.key)) == data
    assert [n for n in env.stored() if "/tmp/" in n] == []
    assert env.pending_multipart() == 0
    writer = store.writer()  # an aborted multipart upload leaves no parts behind
    resolve(writer.write(os.urandom(6 * 1024 * 1024)))
    assert env.pending_multipart() == 1
    resolve(writer.abort())
    assert env.pending_multipart() == 0


@pytest.mark.parametrize("size", SIZES)
def test_stream_batches_round_trip_and_ranges(store: BlobStore, size: int) -> None:
    """``stream`` (many chunks per read, the GET path) on every backend, whole and ranged."""
    data = os.urandom(size)
    info = write(store, data)

    def read_all(reader: Any) -> bytes:
        out = []
        while chunk := resolve(reader.read_chunk()):
            out.append(chunk)
        resolve(reader.aclose())
        return b"".join(out)

    assert read_all(store.stream(info.key)) == data
    start, end = size // 3, size - size // 4
    assert read_all(store.stream(info.key, start, end, 3 * CHUNK)) == data[start:end]


def test_stream_detects_tampering(env: Env, store: BlobStore) -> None:
    info = write(store, os.urandom(3 * CHUNK))
    env.flip_byte(info.key, 100 + 2 * CHUNK)
    reader = store.stream(info.key)
    with pytest.raises(BlobCorrupt):
        while resolve(reader.read_chunk()):
            pass


def test_list_older_names_committed_blobs_by_age(env: Env, store: BlobStore) -> None:
    """What the sweeper of unreferenced blobs sees: committed blobs, never uploads in progress."""
    keys = {resolve(store.put(b"blob %d" % i)).key for i in range(3)}
    pending = env.backend.new_upload()
    pending.write(b"still uploading")
    try:
        assert set(env.backend.list_older(time.time() + 120)) == keys
        assert set(env.backend.list_older(time.time() - 3600)) == set()
    finally:
        pending.abort()
