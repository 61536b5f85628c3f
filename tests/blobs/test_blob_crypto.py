"""Chunked AES-GCM format: sizes, range arithmetic, tamper and wrong-key detection."""

from __future__ import annotations

import io
import os

import pytest

from tau.blobs import (
    CHUNK,
    BlobCorrupt,
    ChunkEncryptor,
    DecryptingReader,
    ciphertext_range,
    ciphertext_size,
    plaintext_size,
)
from tau.blobs.crypto import HEADER_SIZE, TAG, Header, file_reader

KEY = os.urandom(32)
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 1024 * 1024 + 7]


def encrypt(data: bytes, key: bytes = KEY, piece: int = 10_000) -> bytes:
    enc = ChunkEncryptor(key)
    out = [enc.update(data[i:i + piece]) for i in range(0, len(data), piece)]
    return b"".join(out) + enc.finalize()


def reader(blob: bytes, key: bytes = KEY) -> DecryptingReader:
    return DecryptingReader(key, file_reader(io.BytesIO(blob)), len(blob))


def decrypt(blob: bytes, key: bytes = KEY, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(reader(blob, key).chunks(start, end))


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_sizes(size: int) -> None:
    data = os.urandom(size)
    blob = encrypt(data)
    assert len(blob) == ciphertext_size(size)
    assert plaintext_size(len(blob)) == size
    assert reader(blob).size == size
    assert decrypt(blob) == data


def test_update_output_is_independent_of_piece_size() -> None:
    data = os.urandom(3 * CHUNK + 5)
    for piece in (1000, CHUNK, 3 * CHUNK + 5):
        assert decrypt(encrypt(data, piece=piece)) == data


def test_finalize_twice_and_update_after_finalize_fail() -> None:
    enc = ChunkEncryptor(KEY)
    enc.finalize()
    with pytest.raises(ValueError):
        enc.finalize()
    with pytest.raises(ValueError):
        enc.update(b"x")


def test_bad_master_key_length() -> None:
    with pytest.raises(ValueError):
        ChunkEncryptor(b"short")


def test_ciphertext_does_not_contain_plaintext_and_differs_each_time() -> None:
    data = b"attack at dawn " * 10_000
    one, two = encrypt(data), encrypt(data)
    assert b"attack at dawn" not in one
    assert one != two  # fresh data key and nonce prefix per blob


def test_wrong_master_key_cannot_read() -> None:
    blob = encrypt(b"secret")
    with pytest.raises(BlobCorrupt, match="master key"):
        decrypt(blob, key=os.urandom(32))


@pytest.mark.parametrize("size", [0, 1, CHUNK + 1, 1024 * 1024 + 7])
def test_header_byte_flips_are_detected(size: int) -> None:
    blob = encrypt(os.urandom(size))
    for pos in range(HEADER_SIZE):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(BlobCorrupt):
            decrypt(bytes(bad))


@pytest.mark.parametrize("pos", [HEADER_SIZE, HEADER_SIZE + CHUNK + TAG - 1, -1, -17])
def test_body_byte_flip_is_detected(pos: int) -> None:
    blob = bytearray(encrypt(os.urandom(2 * CHUNK + 100)))
    blob[pos] ^= 0x80
    with pytest.raises(BlobCorrupt):
        decrypt(bytes(blob))


def test_empty_blob_tag_is_checked() -> None:
    blob = bytearray(encrypt(b""))
    blob[-1] ^= 1
    with pytest.raises(BlobCorrupt):
        decrypt(bytes(blob))


@pytest.mark.parametrize("cut", [1, 16, 100, 100 + TAG])
def test_truncation_is_detected(cut: int) -> None:
    # 2 full chunks + 100 bytes; cutting 100+TAG drops the whole last chunk, so chunk 1
    # now appears to be last, and its AAD (final=0) no longer matches.
    blob = encrypt(os.urandom(2 * CHUNK + 100))
    with pytest.raises(BlobCorrupt):
        decrypt(blob[:-cut])


def test_truncation_at_full_chunk_boundary_is_detected() -> None:
    blob = encrypt(os.urandom(3 * CHUNK))
    with pytest.raises(BlobCorrupt):
        decrypt(blob[:-(CHUNK + TAG)])


def test_swapped_chunks_are_detected() -> None:
    blob = encrypt(os.urandom(3 * CHUNK))
    c = CHUNK + TAG
    h = HEADER_SIZE
    swapped = blob[:h] + blob[h + c:h + 2 * c] + blob[h:h + c] + blob[h + 2 * c:]
    with pytest.raises(BlobCorrupt):
        decrypt(swapped)


def test_chunks_cannot_be_spliced_between_blobs() -> None:
    a, b = encrypt(os.urandom(2 * CHUNK)), encrypt(os.urandom(2 * CHUNK))
    h, c = HEADER_SIZE, CHUNK + TAG
    with pytest.raises(BlobCorrupt):
        decrypt(a[:h] + b[h:h + c] + a[h + c:])


def test_too_short_or_torn_sizes() -> None:
    with pytest.raises(BlobCorrupt):
        plaintext_size(HEADER_SIZE + TAG - 1)
    with pytest.raises(BlobCorrupt):
        plaintext_size(HEADER_SIZE + CHUNK + TAG + 5)  # last chunk shorter than a tag
    with pytest.raises(BlobCorrupt):
        plaintext_size(HEADER_SIZE + CHUNK + TAG + TAG)  # empty non-first last chunk
    with pytest.raises(BlobCorrupt):
        decrypt(b"NOPE" + bytes(200))


def test_header_parse_rejects_other_versions() -> None:
    blob = bytearray(encrypt(b"x"))
    blob[4] = 2
    with pytest.raises(BlobCorrupt, match="version"):
        Header.parse(bytes(blob))


@pytest.mark.parametrize("start,end,first,count", [
    (0, 1, 0, 1),
    (CHUNK - 1, CHUNK, 0, 1),
    (CHUNK, CHUNK + 1, 1, 1),
    (CHUNK - 1, CHUNK + 1, 0, 2),
    (5, 3 * CHUNK, 0, 3),
])
def test_ciphertext_range_without_size(start: int, end: int, first: int, count: int) -> None:
    offset, length, index = ciphertext_range(start, end)
    assert index == first
    assert offset == HEADER_SIZE + first * (CHUNK + TAG)
    assert length == count * (CHUNK + TAG)


def test_ciphertext_range_with_size_is_exact() -> None:
    size = 2 * CHUNK + 100
    offset, length, index = ciphertext_range(CHUNK + 3, size, size=size)
    assert (offset, index) == (HEADER_SIZE + CHUNK + TAG, 1)
    assert offset + length == ciphertext_size(size)
    with pytest.raises(ValueError):
        ciphertext_range(5, 5)
    with pytest.raises(ValueError):
        ciphertext_range(size, size + 10, size=size)


@pytest.mark.parametrize("start,end", [
    (0, 0), (0, 1), (CHUNK - 1, CHUNK + 1), (CHUNK, 2 * CHUNK), (7, 2 * CHUNK + 50),
    (2 * CHUNK + 99, None), (2 * CHUNK + 100, None), (10**9, None), (3, 10**9),
])
def test_range_decrypt_matches_slice(start: int, end: int | None) -> None:
    data = os.urandom(2 * CHUNK + 100)
    assert decrypt(encrypt(data), start=start, end=end) == data[start:end]


def test_bad_ranges_rejected() -> None:
    r = reader(encrypt(b"abc"))
    with pytest.raises(ValueError):
        list(r.chunks(-1))
    with pytest.raises(ValueError):
        list(r.chunks(2, 1))
