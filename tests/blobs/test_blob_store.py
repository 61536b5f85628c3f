"""BlobStore / SyncBlobStore: round trips, ranges, dedupe, tampering, cleanup, memory, ordering."""

from __future__ import annotations

import gc
import hashlib
import hmac
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred

from tau.blobs import (
    CHUNK,
    BlobCorrupt,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    DecryptingReader,
    InvalidBlobKey,
    SyncBlobStore,
)
from tau.blobs.crypto import HEADER_SIZE, TAG

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 1024 * 1024 + 7]
Resolve = Callable[[Deferred[Any]], Any]


def write_all(store: BlobStore, result: Resolve, data: bytes, piece: int) -> BlobInfo:
    writer = store.writer()
    for pos in range(0, len(data), piece):
        assert result(writer.write(data[pos:pos + piece])) is None
    return result(writer.commit())


def stream(store: BlobStore, result: Resolve, key: str, start: int = 0, end: int | None = None) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [chunk async for chunk in store.open(key, start, end)]

    return result(Deferred.fromCoroutine(collect()))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("piece", [1000, CHUNK, 3 * CHUNK])
def test_async_round_trip(store: BlobStore, result: Resolve, address_key: bytes, size: int,
                          piece: int) -> None:
    data = os.urandom(size)
    info = write_all(store, result, data, piece)
    assert info == BlobInfo(hmac.new(address_key, data, hashlib.sha256).hexdigest(), size)
    assert result(store.read(info.key)) == data
    assert b"".join(stream(store, result, info.key)) == data
    assert result(store.size(info.key)) == size
    assert result(store.exists(info.key)) is True


@pytest.mark.parametrize("size", SIZES)
def test_sync_round_trip(sync_store: SyncBlobStore, size: int) -> None:
    data = os.urandom(size)
    writer = sync_store.writer()
    writer.write(data[:size // 2])
    writer.write(data[size // 2:])
    info = writer.commit()
    assert info.size == size and info.key == sync_store.address(data)
    assert sync_store.read(info.key) == data
    assert b"".join(sync_store.open(info.key)) == data
    assert sync_store.size(info.key) == size


def test_put_and_delete(store: BlobStore, result: Resolve, files: Any, backend: Any) -> None:
    info = result(store.put(b"hello"))
    assert info.size == 5 and result(store.read(info.key)) == b"hello"
    result(store.check())
    result(store.delete(info.key))
    assert result(store.exists(info.key)) is False
    assert files(backend) == []
    with pytest.raises(BlobNotFound):
        result(store.read(info.key))
    with pytest.raises(BlobNotFound):
        result(store.size(info.key))


def test_key_is_keyed_not_plain_hash(sync_store: SyncBlobStore, make_backend: Any, make_store: Any) -> None:
    info = sync_store.put(b"guessable")
    assert info.key != hashlib.sha256(b"guessable").hexdigest()
    other = make_store(make_backend("other"), address=os.urandom(32))
    assert other.sync.put(b"guessable").key != info.key


def test_dedupe_identical_content(store: BlobStore, sync_store: SyncBlobStore, result: Resolve,
                                  files: Any, backend: Any) -> None:
    data = os.urandom(2 * CHUNK + 3)
    a = result(store.put(data))
    b = write_all(store, result, data, 5000)
    c = sync_store.put(data)
    assert a == b == c
    assert len(files(backend)) == 1
    assert result(store.read(a.key)) == data


BLOB = 3 * CHUNK + 100


@pytest.mark.parametrize("start,end", [
    (0, 1), (CHUNK - 1, CHUNK), (CHUNK, CHUNK + 1), (CHUNK - 1, CHUNK + 1), (CHUNK, 2 * CHUNK),
    (2 * CHUNK - 1, 3 * CHUNK + 1), (3 * CHUNK, BLOB), (BLOB - 1, None), (1, None), (0, None),
    (5, 10 * BLOB),
])
def test_range_reads_touch_only_needed_chunks(store: BlobStore, result: Resolve, backend: Any,
                                              monkeypatch: pytest.MonkeyPatch, start: int,
                                              end: int | None) -> None:
    data = os.urandom(BLOB)
    key = result(store.put(data)).key
    decrypted: list[int] = []
    real = DecryptingReader.decrypt_chunk

    def spy(self: DecryptingReader, index: int, chunk: bytes, final: bool) -> bytes:
        decrypted.append(index)
        return real(self, index, chunk, final)

    monkeypatch.setattr(DecryptingReader, "decrypt_chunk", spy)
    stop = BLOB if end is None else min(end, BLOB)
    wanted = list(range(start // CHUNK, (stop - 1) // CHUNK + 1))
    body = sum(CHUNK + TAG if i < 3 else 100 + TAG for i in wanted)
    for read in (lambda: result(store.read(key, start, end)),
                 lambda: b"".join(stream(store, result, key, start, end))):
        backend.reset()
        decrypted.clear()
        assert read() == data[start:end]
        assert decrypted == wanted
        assert backend.reads == [(0, HEADER_SIZE), (HEADER_SIZE + wanted[0] * (CHUNK + TAG), body)]
        assert backend.bytes_read == HEADER_SIZE + body


def test_streamed_chunks_are_chunk_sized(store: BlobStore, result: Resolve) -> None:
    key = result(store.put(os.urandom(BLOB))).key
    assert [len(c) for c in stream(store, result, key, 10)] == [CHUNK - 10, CHUNK, CHUNK, 100]


def test_empty_ranges(store: BlobStore, result: Resolve) -> None:
    key = result(store.put(b"0123456789")).key
    assert result(store.read(key, 5, 5)) == b""
    assert result(store.read(key, 50)) == b""
    assert result(store.read(key, 3, 5)) == b"34"
    with pytest.raises(ValueError):
        result(store.read(key, 5, 4))
    with pytest.raises(ValueError):
        store.open(key, -1)


def tamper(backend: Any, key: str, edit: Callable[[bytearray], bytes | bytearray]) -> None:
    path = backend.path_for(key)
    path.write_bytes(edit(bytearray(path.read_bytes())))


def flip(pos: int) -> Callable[[bytearray], bytearray]:
    def edit(raw: bytearray) -> bytearray:
        raw[pos] ^= 0x01
        return raw

    return edit


def swap01(raw: bytearray) -> bytes:
    h, c = HEADER_SIZE, CHUNK + TAG
    return bytes(raw[:h] + raw[h + c:h + 2 * c] + raw[h:h + c] + raw[h + 2 * c:])


@pytest.mark.parametrize("edit", [
    flip(0), flip(10), flip(HEADER_SIZE - 1), flip(HEADER_SIZE), flip(HEADER_SIZE + CHUNK + TAG + 7),
    flip(-1), lambda raw: raw[:-1], lambda raw: raw[:-10], lambda raw: raw[:-(100 + TAG)],
    lambda raw: raw[:HEADER_SIZE - 1], swap01, lambda raw: raw + b"x",
], ids=["magic", "header", "wrapped-key", "chunk0", "chunk1", "last-tag", "cut1", "cut10",
        "cut-last-chunk", "cut-header", "swap", "appended"])
def test_tampering_is_detected(store: BlobStore, sync_store: SyncBlobStore, result: Resolve,
                               backend: Any, edit: Callable[[bytearray], Any]) -> None:
    key = result(store.put(os.urandom(3 * CHUNK + 100))).key
    tamper(backend, key, edit)
    with pytest.raises(BlobCorrupt):
        result(store.read(key))
    with pytest.raises(BlobCorrupt):
        stream(store, result, key)
    with pytest.raises(BlobCorrupt):
        sync_store.read(key)


def test_range_reads_verify_what_they_read(store: BlobStore, result: Resolve, backend: Any) -> None:
    data = os.urandom(3 * CHUNK)
    key = result(store.put(data)).key
    tamper(backend, key, flip(HEADER_SIZE + CHUNK + TAG + 7))  # chunk 1
    assert result(store.read(key, 0, CHUNK)) == data[:CHUNK]
    with pytest.raises(BlobCorrupt):
        result(store.read(key, CHUNK - 1, CHUNK + 1))


def test_other_master_key_cannot_read(sync_store: SyncBlobStore, backend: Any, address_key: bytes) -> None:
    key = sync_store.put(b"private").key
    intruder = SyncBlobStore(backend, os.urandom(32), address_key)
    with pytest.raises(BlobCorrupt, match="master key"):
        intruder.read(key)


def test_ciphertext_on_disk_hides_plaintext(store: BlobStore, result: Resolve, backend: Any) -> None:
    text = b"Dear Bob, the launch code is 0000. " * 5000
    key = result(store.put(text)).key
    raw = backend.path_for(key).read_bytes()
    assert b"launch code" not in raw and b"Dear Bob" not in raw
    assert raw.startswith(b"TAUB")


def test_abort_leaves_nothing(store: BlobStore, result: Resolve, backend: Any, files: Any) -> None:
    writer = store.writer()
    result(writer.write(os.urandom(3 * CHUNK)))
    assert len(os.listdir(backend.tmp)) == 1
    result(writer.abort())
    result(writer.abort())
    assert files(backend) == []
    with pytest.raises(ValueError):
        result(writer.write(b"x"))
    with pytest.raises(ValueError):
        result(writer.commit())
    result(store.writer().abort())  # nothing written at all
    assert files(backend) == []


def test_abort_after_commit_keeps_blob(store: BlobStore, result: Resolve) -> None:
    writer = store.writer()
    result(writer.write(os.urandom(CHUNK + 1)))
    info = result(writer.commit())
    result(writer.abort())
    assert result(store.exists(info.key))


def test_dropped_writers_leave_nothing(store: BlobStore, sync_store: SyncBlobStore, result: Resolve,
                                       backend: Any, files: Any) -> None:
    writer = store.writer()
    result(writer.write(os.urandom(2 * CHUNK)))
    sync_writer = sync_store.writer()
    sync_writer.write(b"abc")
    assert len(os.listdir(backend.tmp)) == 2
    del writer, sync_writer
    gc.collect()
    assert files(backend) == []


def test_backend_failure_discards_upload(make_backend: Any, make_store: Any, result: Resolve,
                                        files: Any) -> None:
    backend = make_backend("full", upload_limit=3 * CHUNK)
    store = make_store(backend)
    writer = store.writer()
    with pytest.raises(OSError):
        for _ in range(10):
            result(writer.write(os.urandom(CHUNK)))
    assert files(backend) == []
    with pytest.raises((OSError, ValueError)):
        result(writer.commit())
    result(writer.abort())
    with pytest.raises(OSError):
        store.sync.put(os.urandom(5 * CHUNK))
    assert files(backend) == []


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "A" * 64, "a" * 63])
def test_store_rejects_bad_keys(store: BlobStore, sync_store: SyncBlobStore, result: Resolve, key: str) -> None:
    for call in (store.read, store.size, store.exists, store.delete):
        with pytest.raises(InvalidBlobKey):
            result(call(key))
    with pytest.raises(InvalidBlobKey):
        store.open(key)
    with pytest.raises(InvalidBlobKey):
        sync_store.read(key)


def test_reader_api(store: BlobStore, result: Resolve) -> None:
    key = result(store.put(os.urandom(2 * CHUNK + 1))).key
    reader = store.open(key)
    assert len(result(reader.read_chunk())) == CHUNK
    result(reader.aclose())
    assert result(reader.read_chunk()) == b""
    reader = store.open(key, 2 * CHUNK)
    assert len(result(reader.read_chunk())) == 1
    assert result(reader.read_chunk()) == b""
    assert result(reader.read_chunk()) == b""
    missing = store.open("0" * 64)
    with pytest.raises(BlobNotFound):
        result(missing.read_chunk())
    assert result(missing.read_chunk()) == b""

    async def with_block() -> bytes:
        async with store.open(key, 0, 3) as r:
            return await r.read_chunk()

    assert len(result(Deferred.fromCoroutine(with_block()))) == 3


def test_check_reports_unavailable(make_backend: Any, make_store: Any, result: Resolve) -> None:
    store = make_store(make_backend("gone/blobs"))
    with pytest.raises(BlobStoreUnavailable):
        result(store.check())


def test_key_checks(backend: Any) -> None:
    key = os.urandom(32)
    with pytest.raises(ValueError):
        SyncBlobStore(backend, key, key)
    with pytest.raises(ValueError):
        SyncBlobStore(backend, b"short", key)


class ManualRunner:
    """run_in_thread double whose jobs run only when the test says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.jobs.append((f, args, d))
        return d

    def step(self) -> None:
        f, args, d = self.jobs.pop(0)
        maybeDeferred(f, *args).chainDeferred(d)


def fired(d: Deferred[Any]) -> bool:
    return bool(d.called) and not d.paused


def test_writer_overlaps_one_job_and_applies_back_pressure(backend: Any, make_store: Any,
                                                           result: Resolve) -> None:
    runner = ManualRunner()
    store = make_store(backend, runner=runner)
    writer = store.writer()
    a, b = b"a" * CHUNK, b"b" * CHUNK
    d1 = writer.write(a)
    assert fired(d1) and len(runner.jobs) == 1  # job 1 runs while the caller reads on
    d2 = writer.write(b)
    assert not fired(d2) and len(runner.jobs) == 1  # waits for job 1; job 2 waits its turn
    runner.step()
    assert fired(d2) and len(runner.jobs) == 1  # job 2 now in a thread
    d3 = writer.commit()
    assert not fired(d3)
    runner.step()
    assert not fired(d3) and len(runner.jobs) == 1  # the commit job
    runner.step()
    info = result(d3)
    assert info.size == 2 * CHUNK
    assert store.sync.read(info.key) == a + b


def test_writer_error_in_background_job_surfaces(make_backend: Any, make_store: Any, result: Resolve,
                                                 files: Any) -> None:
    runner = ManualRunner()
    backend = make_backend("full", upload_limit=CHUNK // 2)
    writer = make_store(backend, runner=runner).writer()
    d1 = writer.write(os.urandom(CHUNK + 1))  # encrypts one chunk: past the limit
    d2 = writer.write(os.urandom(CHUNK))
    runner.step()
    assert result(d1) is None
    runner.step()
    with pytest.raises(OSError):
        result(d2)
    with pytest.raises(OSError):
        result(writer.commit())
    assert files(backend) == []


def test_streaming_64_mib_keeps_memory_bounded(store: BlobStore, result: Resolve) -> None:
    block = os.urandom(1024 * 1024)
    piece = 256 * 1024
    expected = hashlib.sha256()
    for _ in range(64):
        expected.update(block)
    tracemalloc.start()
    try:
        writer = store.writer()
        for _ in range(64):
            for pos in range(0, len(block), piece):
                result(writer.write(block[pos:pos + piece]))
        info = result(writer.commit())
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()

        async def digest() -> str:
            h = hashlib.sha256()
            async for chunk in store.open(info.key):
                h.update(chunk)
            return h.hexdigest()

        got = result(Deferred.fromCoroutine(digest()))
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.size == 64 * 1024 * 1024
    assert got == expected.hexdigest()
    assert write_peak < 8 * 1024 * 1024, write_peak
    assert read_peak < 8 * 1024 * 1024, read_peak


def test_unawaited_writes_keep_their_order(backend: Any, make_store: Any, result: Resolve) -> None:
    runner = ManualRunner()
    store = make_store(backend, runner=runner)
    writer = store.writer()
    parts = [os.urandom(CHUNK + 7), os.urandom(10), os.urandom(3 * CHUNK), os.urandom(CHUNK - 1)]
    pending = [writer.write(p) for p in parts] + [writer.commit()]
    while runner.jobs:
        runner.step()
    info = result(pending[-1])
    assert all(fired(d) for d in pending)
    assert store.sync.read(info.key) == b"".join(parts)


def test_reader_close_waits_for_running_read(backend: Any, make_store: Any, result: Resolve) -> None:
    runner = ManualRunner()
    store = make_store(backend, runner=runner)
    key = store.sync.put(os.urandom(3 * CHUNK)).key
    reader = store.open(key)
    first, second = reader.read_chunk(), reader.read_chunk()
    closed = reader.aclose()
    assert len(runner.jobs) == 1  # one job at a time on the generator
    while runner.jobs:
        runner.step()
    assert len(result(first)) == CHUNK and len(result(second)) == CHUNK
    result(closed)
    assert result(reader.read_chunk()) == b""
