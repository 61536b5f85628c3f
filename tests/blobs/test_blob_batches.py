"""Large reads and writes: ``batches`` (many chunks per read, decrypted in place), ``feed`` (chunks
sealed straight from the input), ``open_range`` (read into the caller's buffer)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from tau.blobs import CHUNK, BlobCorrupt, BlobNotFound, ChunkEncryptor, DecryptingReader, LocalBackend, SyncBlobStore
from tau.blobs.base import PieceSource
from tau.blobs.crypto import HEADER_SIZE, TAG, file_reader

KEY = os.urandom(32)
MASTER, ADDRESS = bytes(range(32)), bytes(range(32, 64))
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 40 * CHUNK + 5]


def encrypt_fed(data: bytes, piece: int, chunk_size: int = CHUNK) -> bytes:
    enc = ChunkEncryptor(KEY, chunk_size)
    out: list[bytes] = []
    for i in range(0, len(data), piece):
        enc.feed(data[i:i + piece], lambda view: out.append(bytes(view)))
    return b"".join(out) + enc.finalize()


def reader(blob: bytes) -> DecryptingReader:
    return DecryptingReader(KEY, file_reader(io.BytesIO(blob)), len(blob))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("piece", [1000, CHUNK, 5 * CHUNK + 3])
def test_feed_matches_update_and_decrypts(size: int, piece: int) -> None:
    data = os.urandom(size)
    blob = encrypt_fed(data, piece)
    assert len(blob) == HEADER_SIZE + size + max(1, -(-size // CHUNK)) * TAG
    assert b"".join(reader(blob).chunks()) == data


def test_feed_hands_one_view_per_call_and_reuses_its_buffer() -> None:
    enc = ChunkEncryptor(KEY)
    seen: list[int] = []
    enc.feed(b"", lambda view: seen.append(len(view)))  # the header
    enc.feed(os.urandom(10 * CHUNK), lambda view: seen.append(len(view)))
    assert seen == [HEADER_SIZE, 9 * (CHUNK + TAG)]  # the 10th chunk waits: it may be the last
    seen.clear()
    enc.feed(os.urandom(30 * CHUNK), lambda view: seen.append(len(view)))  # a big write: bounded buffers
    assert seen == [16 * (CHUNK + TAG), 14 * (CHUNK + TAG)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", [1, CHUNK, 4 * CHUNK, 1024 * 1024])
def test_batches_equal_chunks_for_every_range(size: int, batch: int) -> None:
    data = os.urandom(size)
    r = reader(encrypt_fed(data, 7777))
    rng = random.Random(size * 31 + batch)
    ranges = [(0, None), (0, size), (size, None)]
    ranges += [tuple(sorted((rng.randint(0, size), rng.randint(0, size)))) for _ in range(6)]
    for start, end in ranges:
        pieces = list(r.batches(start, end, batch))
        assert b"".join(pieces) == data[start:end], (start, end)
        assert all(len(p) <= max(batch, CHUNK) for p in pieces)


@pytest.mark.parametrize("cut", [1, TAG, CHUNK + TAG])
def test_batches_detect_truncation(cut: int) -> None:
    blob = encrypt_fed(os.urandom(5 * CHUNK + 9), CHUNK)
    with pytest.raises(BlobCorrupt):
        b"".join(reader(blob[:-cut]).batches())


def test_batches_detect_a_flipped_byte_in_any_chunk() -> None:
    blob = bytearray(encrypt_fed(os.urandom(6 * CHUNK), CHUNK))
    blob[HEADER_SIZE + 4 * (CHUNK + TAG) + 10] ^= 1
    r = reader(bytes(blob))
    with pytest.raises(BlobCorrupt):
        b"".join(r.batches(0, None, 8 * CHUNK))
    assert b"".join(r.batches(0, 3 * CHUNK)) == b"".join(r.chunks(0, 3 * CHUNK))  # other chunks still read


def test_piece_source_fills_across_piece_boundaries() -> None:
    src = PieceSource(iter([b"abc", b"", b"defgh", b"i"]))
    buf = bytearray(4)
    got = [bytes(buf[:src.readinto(memoryview(buf))]) for _ in range(4)]
    assert got == [b"abcd", b"efgh", b"i", b""]


def test_store_batches_on_local_disk(tmp_path: Path) -> None:
    store = SyncBlobStore(LocalBackend(tmp_path), MASTER, ADDRESS)
    data = os.urandom(3 * 1024 * 1024 + 11)
    writer = store.writer()
    writer.write(memoryview(data)[:1_000_001])
    writer.write(data[1_000_001:])
    info = writer.commit()
    assert info.size == len(data) and store.read(info.key) == data
    assert b"".join(store.batches(info.key)) == data
    assert b"".join(store.batches(info.key, 70_000, 2_500_000, 256 * 1024)) == data[70_000:2_500_000]
    with pytest.raises(BlobNotFound):
        list(store.batches("0" * 64))


def test_local_open_range_reads_into_the_buffer(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    upload = backend.new_upload()
    upload.write(b"0123456789")
    upload.commit("a" * 64)
    src = backend.open_range("a" * 64, 2, 5)
    buf = bytearray(3)
    assert src.readinto(memoryview(buf)) == 3 and buf == b"234"
    assert src.readinto(memoryview(buf)) == 2 and buf[:2] == b"56"
    assert src.readinto(memoryview(buf)) == 0
    src.close()
    with pytest.raises(BlobNotFound):
        backend.open_range("b" * 64, 0, 1)
