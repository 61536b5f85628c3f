"""Chunked AES-256-GCM: blobs encrypted at rest, streamed, and range-readable.

Layout of one stored blob (version 1)::

    header  magic b"TAUB" | version u8 | chunk size u32 BE | nonce prefix 4 bytes
            | wrap nonce 12 bytes | data key wrapped under the master key (32 + 16 tag)
    chunks  AES-GCM(data key, nonce = prefix + index u64 BE,
                    aad = index u64 BE + final u8) of each ``chunk size`` bytes of plaintext

Each blob has its own random data key, so nonces never repeat across blobs and chunks cannot
be spliced between blobs. The wrap binds the header's first 13 bytes as associated data, so
the header cannot be edited either. The final flag in the chunk AAD detects truncation at a
chunk boundary; the index detects reordering. Every chunk but the last holds exactly ``chunk
size`` plaintext bytes and the last holds 1..chunk size (0 only for the empty blob), so a
plaintext byte range maps to a computable ciphertext range and range reads decrypt only the
chunks they touch. Changing the master key only requires re-wrapping headers.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tau.blobs.base import BlobCorrupt, PieceSource, RangeSource

MAGIC = b"TAUB"
VERSION = 1
CHUNK = 64 * 1024
TAG = 16
KEY_BYTES = 32
MIN_CHUNK, MAX_CHUNK = 1024, 16 * 1024 * 1024

_FIXED = struct.Struct(">4sBI4s")  # magic, version, chunk size, nonce prefix
_WRAP_NONCE = 12
HEADER_SIZE = _FIXED.size + _WRAP_NONCE + KEY_BYTES + TAG  # 73
_AAD = struct.Struct(">QB")

# read(offset, length) -> pieces of raw stored bytes; what a backend's read_range is for one key.
RangeReader = Callable[[int, "int | None"], Iterable[bytes]]
# open(offset, length) -> the stored bytes of that range, read into buffers (backend.open_range)
RangeOpener = Callable[[int, int], RangeSource]
BATCH = 1024 * 1024  # plaintext per ``batches`` item: 16 chunks, one read and one thread job
FEED_CHUNKS = 16  # chunks ``feed`` seals into its buffer before handing it on (~1 MiB)


def _check_master(master_key: bytes) -> AESGCM:
    if not isinstance(master_key, bytes) or len(master_key) != KEY_BYTES:
        raise ValueError("master key must be 32 bytes")
    return AESGCM(master_key)


def _check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size} outside {MIN_CHUNK}..{MAX_CHUNK}")


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(8, "big")


@dataclass(frozen=True)
class Header:
    """The parsed, not yet authenticated, header of a stored blob."""

    chunk_size: int
    nonce_prefix: bytes
    wrap_nonce: bytes
    wrapped_key: bytes
    fixed: bytes  # the first 13 bytes, authenticated by the key wrap

    @classmethod
    def parse(cls, data: bytes) -> Header:
        """Parse a header; BlobCorrupt if it is not a version 1 tau blob header."""
        if len(data) < HEADER_SIZE:
            raise BlobCorrupt("blob shorter than its header")
        magic, version, chunk_size, prefix = _FIXED.unpack_from(data)
        if magic != MAGIC:
            raise BlobCorrupt("not a tau blob (bad magic)")
        if version != VERSION:
            raise BlobCorrupt(f"unsupported blob format version {version}")
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise BlobCorrupt(f"implausible chunk size {chunk_size}")
        pos = _FIXED.size
        return cls(chunk_size, prefix, data[pos:pos + _WRAP_NONCE],
                   data[pos + _WRAP_NONCE:HEADER_SIZE], data[:pos])

    def unwrap(self, master_key: bytes) -> bytes:
        """The blob's data key; BlobCorrupt on a wrong master key or an edited header."""
        try:
            return _check_master(master_key).decrypt(self.wrap_nonce, self.wrapped_key, self.fixed)
        except InvalidTag:
            raise BlobCorrupt("cannot unwrap blob key: wrong master key or tampered header") from None


def ciphertext_size(plaintext_size: int, chunk_size: int = CHUNK) -> int:
    """Stored size of a blob with ``plaintext_size`` bytes of content."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return HEADER_SIZE + plaintext_size + chunks * TAG


def plaintext_size(ciphertext_size: int, chunk_size: int = CHUNK) -> int:
    """Content size of a stored blob of ``ciphertext_size`` bytes; BlobCorrupt if impossible."""
    body = ciphertext_size - HEADER_SIZE
    if body < TAG:
        raise BlobCorrupt(f"blob of {ciphertext_size} bytes is too short")
    full, rest = divmod(body, chunk_size + TAG)
    if rest == 0:
        return full * chunk_size
    if rest < TAG or (rest == TAG and full > 0):  # the encryptor never writes an empty last chunk
        raise BlobCorrupt(f"blob of {ciphertext_size} bytes has a torn last chunk")
    return full * chunk_size + rest - TAG


def ciphertext_range(start: int, end: int, *, size: int | None = None,
                     chunk_size: int = CHUNK) -> tuple[int, int, int]:
    """Map plaintext ``[start, end)`` to ``(offset, length, first_chunk_index)`` of stored bytes.

    The range covers whole chunks (they authenticate as a unit). With the plaintext ``size``
    the length is exact; without it the last chunk is assumed full, which may run past the end.
    """
    if not 0 <= start < end:
        raise ValueError(f"bad range [{start}, {end})")
    if size is not None:
        end = min(end, size)
        if start >= end:
            raise ValueError(f"range [{start}, {end}) beyond blob of {size} bytes")
    first, last = start // chunk_size, (end - 1) // chunk_size
    offset = HEADER_SIZE + first * (chunk_size + TAG)
    length = (last - first + 1) * (chunk_size + TAG)
    if size is not None and last == (size - 1) // chunk_size:
        length -= chunk_size - (size - last * chunk_size)  # short final chunk
    return offset, length, first


class ChunkEncryptor:
    """Incremental encryptor: the concatenated outputs of update() and finalize() are the blob.

    Memory stays at one chunk plus the input given to update(); feed it pieces of about a chunk
    so that the output of each call stays small.
    """

    def __init__(self, master_key: bytes, chunk_size: int = CHUNK) -> None:
        wrap = _check_master(master_key)
        _check_chunk_size(chunk_size)
        data_key, wrap_nonce = os.urandom(KEY_BYTES), os.urandom(_WRAP_NONCE)
        self._prefix = os.urandom(4)
        fixed = _FIXED.pack(MAGIC, VERSION, chunk_size, self._prefix)
        self.header = fixed + wrap_nonce + wrap.encrypt(wrap_nonce, data_key, fixed)
        self.chunk_size = chunk_size
        self._aead = AESGCM(data_key)
        self._index = 0
        self._buf = bytearray()
        self._out = bytearray()  # reused by ``feed`` for the sealed chunks of one call
        self._header_sent = False
        self._done = False

    def _seal(self, plain: bytes, final: bool) -> bytes:
        out = self._aead.encrypt(_nonce(self._prefix, self._index), plain, _AAD.pack(self._index, final))
        self._index += 1
        return out

    def _head(self) -> list[bytes]:
        if self._header_sent:
            return []
        self._header_sent = True
        return [self.header]

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Encrypt what can be; a full chunk is held back until it is known not to be the last."""
        out: list[bytes] = []
        self.feed(data, lambda piece: out.append(bytes(piece)))
        return b"".join(out)

    def feed(self, data: bytes | bytearray | memoryview, sink: Callable[[memoryview], object]) -> None:
        """``update`` for large inputs: full chunks are sealed straight from ``data`` into a reused
        buffer of at most ``FEED_CHUNKS`` chunks and handed to ``sink`` a buffer at a time (a view:
        ``sink`` must consume it before it returns). Only a partial chunk at either end is copied,
        and memory stays at one buffer whatever the size of ``data``."""
        if self._done:
            raise ValueError("encryptor already finalized")
        view = memoryview(data).cast("B")
        if not self._header_sent:
            self._header_sent = True
            sink(memoryview(self.header))
        size, stride = self.chunk_size, self.chunk_size + TAG
        if len(self._buf) + len(view) <= size:  # nothing can be sealed yet
            self._buf += view
            return
        if not self._out:
            self._out = bytearray(FEED_CHUNKS * stride)
        out = memoryview(self._out)
        pos = filled = 0
        if self._buf:  # complete the held-back partial chunk first
            pos = size - len(self._buf)
            self._buf += view[:pos]
            self._seal_into(memoryview(self._buf), out[:stride])
            filled = 1
        while len(view) - pos > size:  # a full chunk with more after it: not the last one
            if filled == FEED_CHUNKS:
                sink(out)
                filled = 0
            self._seal_into(view[pos:pos + size], out[filled * stride:(filled + 1) * stride])
            pos += size
            filled += 1
        self._buf = bytearray(view[pos:])
        if filled:
            sink(out[:filled * stride])

    def _seal_into(self, plain: memoryview, out: memoryview) -> None:
        self._aead.encrypt_into(_nonce(self._prefix, self._index), plain, _AAD.pack(self._index, False), out)
        self._index += 1

    def finalize(self) -> bytes:
        """Seal the last chunk (empty for an empty blob) with the final flag set."""
        if self._done:
            raise ValueError("encryptor already finalized")
        self._done = True
        out = self._head()
        out.append(self._seal(bytes(self._buf), True))
        self._buf = bytearray()
        return b"".join(out)


def file_reader(fh: BinaryIO, block: int = CHUNK) -> RangeReader:
    """Adapt a seekable binary file to a RangeReader (for tools and tests)."""

    def read(offset: int, length: int | None) -> Iterator[bytes]:
        fh.seek(offset)
        left = length
        while left is None or left > 0:
            piece = fh.read(block if left is None else min(block, left))
            if not piece:
                return
            if left is not None:
                left -= len(piece)
            yield piece

    return read


class DecryptingReader:
    """Decrypts plaintext ranges of one stored blob, reading only the chunks they touch.

    ``read`` fetches stored bytes by range, ``ciphertext_size`` is the stored size. The header
    is read and its key unwrapped on construction (BlobCorrupt on a wrong key).
    """

    def __init__(self, master_key: bytes, read: RangeReader, ciphertext_size: int,
                 open_range: RangeOpener | None = None) -> None:
        self._read = read
        self._open_range = open_range or (lambda offset, length: PieceSource(read(offset, length)))
        header = Header.parse(b"".join(_read_exact(read, 0, HEADER_SIZE)))
        self._aead = AESGCM(header.unwrap(master_key))
        self._prefix = header.nonce_prefix
        self.chunk_size = header.chunk_size
        self.size = plaintext_size(ciphertext_size, header.chunk_size)

    def decrypt_chunk(self, index: int, data: bytes, final: bool) -> bytes:
        """Authenticate and decrypt chunk ``index``; BlobCorrupt if it fails."""
        try:
            return self._aead.decrypt(_nonce(self._prefix, index), data, _AAD.pack(index, final))
        except InvalidTag:
            raise BlobCorrupt(f"blob chunk {index} failed authentication") from None

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the plaintext of ``[start, end)`` (``end`` exclusive, clamped), a chunk at a time."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad range [{start}, {end})")
        size, csize = self.size, self.chunk_size
        end = size if end is None else min(end, size)
        if size == 0:  # still authenticate the lone empty chunk: the blob is whole
            if start == 0:
                self.decrypt_chunk(0, b"".join(_read_exact(self._read, HEADER_SIZE, TAG)), True)
            return
        if start >= end:
            return
        offset, length, index = ciphertext_range(start, end, size=size, chunk_size=csize)
        last, stop = (size - 1) // csize, (end - 1) // csize
        pos = index * csize  # plaintext offset of chunk ``index``
        buf = bytearray()
        pieces = iter(self._read(offset, length))
        try:
            for piece in pieces:
                buf += piece
                while index <= stop:
                    need = csize + TAG if index < last else size - last * csize + TAG
                    if len(buf) < need:
                        break
                    plain = self.decrypt_chunk(index, bytes(buf[:need]), index == last)
                    del buf[:need]
                    lo, hi = max(start - pos, 0), min(end - pos, csize)
                    yield plain if (lo, hi) == (0, len(plain)) else plain[lo:hi]
                    index, pos = index + 1, pos + csize
                if index > stop:
                    return
            raise BlobCorrupt(f"blob truncated in chunk {index}")
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()


    def batches(self, start: int = 0, end: int | None = None, batch: int = BATCH) -> Iterator[bytes]:
        """Like ``chunks`` but ~``batch`` bytes at a time: the ciphertext of several chunks is read
        with one call into a reused buffer and decrypted in place (``decrypt_into``), so a large
        read costs one read, one decryption and one copy per byte, and a few allocations."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad range [{start}, {end})")
        size, csize = self.size, self.chunk_size
        end = size if end is None else min(end, size)
        if size == 0 or start >= end:
            yield from self.chunks(start, end)  # the empty blob: authenticate its lone chunk
            return
        offset, length, index = ciphertext_range(start, end, size=size, chunk_size=csize)
        last, stop = (size - 1) // csize, (end - 1) // csize
        per = max(1, batch // csize)
        stride = csize + TAG
        cipher = memoryview(bytearray(per * stride))
        plain = memoryview(bytearray(per * csize))
        source = self._open_range(offset, length)
        try:
            while index <= stop:
                n = min(per, stop - index + 1)
                final_len = size - last * csize if index + n - 1 == last else csize
                clen, plen = (n - 1) * stride + final_len + TAG, (n - 1) * csize + final_len
                got = 0
                while got < clen:
                    k = source.readinto(cipher[got:clen])
                    if k <= 0:
                        raise BlobCorrupt(f"blob truncated in chunk {index + got // stride}")
                    got += k
                for i in range(n):
                    cl = stride if i < n - 1 else final_len + TAG
                    self._decrypt_into(index + i, cipher[i * stride:i * stride + cl],
                                       plain[i * csize:i * csize + cl - TAG], index + i == last)
                pos = index * csize  # plaintext offset of this batch
                lo, hi = max(start - pos, 0), min(end - pos, plen)
                yield bytes(plain[lo:hi])
                index += n
        finally:
            source.close()

    def _decrypt_into(self, index: int, data: memoryview, out: memoryview, final: bool) -> None:
        try:
            self._aead.decrypt_into(_nonce(self._prefix, index), data, _AAD.pack(index, final), out)
        except InvalidTag:
            raise BlobCorrupt(f"blob chunk {index} failed authentication") from None


def _read_exact(read: RangeReader, offset: int, length: int) -> Iterator[bytes]:
    got = 0
    for piece in read(offset, length):
        got += len(piece)
        yield piece
    if got < length:
        raise BlobCorrupt("blob truncated")
