"""The blob store: encryption, content addressing and an async facade over a backend.

``SyncBlobStore`` holds all the logic as blocking methods (command-line tools use it as is);
``BlobStore`` runs those same methods in threads through an injected ``run_in_thread`` (in the
daemon ``twisted.internet.threads.deferToThread``) and returns Deferreds. Keys are
HMAC-SHA256(address_key, plaintext): identical content is stored once, and the key reveals
nothing to whoever lacks the address key (unlike a plain hash, which confirms guesses).
Whole blobs are never held in memory: writes and reads move a chunk or so at a time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Self

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.python.failure import Failure

from tau.blobs.base import BlobBackend, RangeSource, Upload, validate_key
from tau.blobs.crypto import (
    BATCH,
    CHUNK,
    HEADER_SIZE,
    ChunkEncryptor,
    DecryptingReader,
    Header,
    plaintext_size,
)

RunInThread = Callable[..., "Deferred[Any]"]


@dataclass(frozen=True)
class BlobInfo:
    """What a caller records in its metadata: the content address and the plaintext size."""

    key: str
    size: int


class SyncBlobWriter:
    """A blob being written (blocking): feed plaintext, then commit or abort.

    Any error discards the upload, so a failed writer never leaves a temp file behind; so
    does dropping the writer without commit (the backend upload cleans up when collected).
    """

    def __init__(self, upload: Upload, master_key: bytes, address_key: bytes) -> None:
        self._upload = upload
        self._encryptor = ChunkEncryptor(master_key)
        self._mac = hmac.new(address_key, digestmod=hashlib.sha256)
        self._size = 0
        self._open = True

    def _check_open(self) -> None:
        if not self._open:
            raise ValueError("blob writer is closed")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hash, encrypt and store ``data``: whole chunks are sealed straight from it into one
        reused buffer and written with one call, so a 1 MiB write is one pass per stage."""
        self._check_open()
        try:
            view = memoryview(data).cast("B")
            self._mac.update(view)
            self._encryptor.feed(view, self._upload.write)
            self._size += len(view)
        except BaseException:
            self.abort()
            raise

    def commit(self) -> BlobInfo:
        """Seal the last chunk and publish under the content address (deduplicated)."""
        self._check_open()
        try:
            self._upload.write(self._encryptor.finalize())
            key = self._mac.hexdigest()
            self._upload.commit(key)
        except BaseException:
            self.abort()
            raise
        self._open = False
        return BlobInfo(key, self._size)

    def abort(self) -> None:
        """Throw the upload away; idempotent."""
        self._open = False
        self._upload.abort()


class SyncBlobStore:
    """Blocking blob store: the implementation behind BlobStore, and the CLI's way in."""

    def __init__(self, backend: BlobBackend, master_key: bytes, address_key: bytes) -> None:
        if len(master_key) != 32 or len(address_key) != 32:
            raise ValueError("master_key and address_key must be 32 bytes")
        if master_key == address_key:
            raise ValueError("master_key and address_key must differ")
        self.backend = backend
        self._master_key = master_key
        self._address_key = address_key

    def address(self, data: bytes) -> str:
        """The key ``data`` would be stored under (to look it up before uploading)."""
        return hmac.new(self._address_key, data, hashlib.sha256).hexdigest()

    def writer(self) -> SyncBlobWriter:
        return SyncBlobWriter(self.backend.new_upload(), self._master_key, self._address_key)

    def put(self, data: bytes) -> BlobInfo:
        """Store a small blob in one call."""
        writer = self.writer()
        writer.write(data)
        return writer.commit()

    def reader(self, key: str) -> DecryptingReader:
        """Authenticate the header of ``key`` and return a reader for its plaintext ranges."""
        validate_key(key)
        stored = self.backend.size(key)

        def read(offset: int, length: int | None) -> Iterator[bytes]:
            return self.backend.read_range(key, offset, length)

        def open_range(offset: int, length: int) -> RangeSource:
            return self.backend.open_range(key, offset, length)

        return DecryptingReader(self._master_key, read, stored, open_range)

    def open(self, key: str, start: int = 0, end: int | None = None) -> Generator[bytes, None, None]:
        """Yield plaintext ``[start, end)`` (``end`` exclusive) a chunk at a time.

        Lazy: nothing is read, not even the header, before the first ``next()``.
        """
        _check_range(start, end)
        validate_key(key)
        return self._open(key, start, end)

    def _open(self, key: str, start: int, end: int | None) -> Generator[bytes, None, None]:
        yield from self.reader(key).chunks(start, end)

    def batches(self, key: str, start: int = 0, end: int | None = None,
                size: int = BATCH) -> Generator[bytes, None, None]:
        """Like ``open`` but ~``size`` bytes per item, each read and decrypted in one go (large reads)."""
        _check_range(start, end)
        validate_key(key)
        return self._batches(key, start, end, size)

    def _batches(self, key: str, start: int, end: int | None, size: int) -> Generator[bytes, None, None]:
        yield from self.reader(key).batches(start, end, size)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Plaintext ``[start, end)`` as bytes; meant for small blobs and ranges."""
        return b"".join(self.open(key, start, end))

    def read_small(self, key: str) -> bytes:
        """The whole plaintext of a small blob (a chunk or two: mail bodies) with one backend read of
        the stored bytes, where ``read`` looks up the size and reads the header and the chunks
        separately; the header and every chunk are still authenticated. Big blobs: ``open``."""
        validate_key(key)
        stored = b"".join(self.backend.read_range(key, 0, None))

        def read(offset: int, length: int | None) -> Iterator[bytes]:
            return iter((stored[offset:] if length is None else stored[offset:offset + length],))

        return b"".join(DecryptingReader(self._master_key, read, len(stored)).chunks())

    def size(self, key: str) -> int:
        """Plaintext size, from the stored size and the header's chunk size (no decryption)."""
        validate_key(key)
        stored = self.backend.size(key)
        header = Header.parse(b"".join(self.backend.read_range(key, 0, HEADER_SIZE)))
        return plaintext_size(stored, header.chunk_size)

    def exists(self, key: str) -> bool:
        return self.backend.exists(validate_key(key))

    def delete(self, key: str) -> None:
        """Remove the blob; the caller's metadata must know no other message/file uses it."""
        self.backend.delete(validate_key(key))

    def check(self) -> None:
        self.backend.check()


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad range [{start}, {end})")


def _next_or_none(iterator: Iterator[bytes]) -> bytes | None:
    return next(iterator, None)


class BlobReader:
    """Async plaintext stream of one blob range; each chunk is read and decrypted in a thread.

    Use ``async for chunk in reader`` or, from callback code (e.g. an IPushProducer),
    ``read_chunk()`` until it yields b"". ``aclose()`` (or ``async with``) releases the file
    early; a reader dropped half way is released by garbage collection.
    """

    def __init__(self, run_in_thread: RunInThread, chunks: Generator[bytes, None, None]) -> None:
        self._run = run_in_thread
        self._chunks = chunks
        self._lock = DeferredLock()  # a generator must not run in two threads at once
        self._done = False

    def read_chunk(self) -> Deferred[bytes]:
        """The next plaintext chunk, or b"" at the end."""
        if self._done:
            return succeed(b"")
        d = self._lock.run(self._run, _next_or_none, self._chunks)

        def got(chunk: bytes | None) -> bytes:
            if chunk is None:
                self._done = True
                return b""
            return chunk

        def failed(failure: Failure) -> Failure:
            self._done = True
            return failure

        return d.addCallbacks(got, failed)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    def aclose(self) -> Deferred[None]:
        """Stop early and close the underlying file or connection (in a thread)."""
        self._done = True
        return self._lock.run(self._run, self._chunks.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class BlobWriter:
    """Async blob writer: buffers a chunk in the reactor thread, encrypts and writes in a thread.

    Each ``write()`` that fills a chunk starts a thread job and then waits for the job before
    it, so one job runs while the caller receives the next chunk, and a slow disk slows the
    caller down (back-pressure) instead of growing memory. Jobs run one at a time, in order.
    """

    def __init__(self, store: SyncBlobStore, run_in_thread: RunInThread) -> None:
        self._store = store
        self._run = run_in_thread
        self._writer: SyncBlobWriter | None = None  # created by the first thread job
        self._buf = bytearray()
        self._lock = DeferredLock()  # thread jobs strictly one after the other
        self._last: Deferred[None] | None = None  # the latest job; its errors go to _failure
        self._failure: Failure | None = None
        self._open = True

    def _sync_writer(self) -> SyncBlobWriter:  # thread side; jobs are serialized by the lock
        if self._writer is None:
            self._writer = self._store.writer()
        return self._writer

    def _job_write(self, data: bytes | bytearray) -> None:
        self._sync_writer().write(data)

    def _job_commit(self, data: bytes) -> BlobInfo:
        writer = self._sync_writer()
        if data:
            writer.write(data)
        return writer.commit()

    def _start(self, data: bytes | bytearray) -> Deferred[None]:
        def remember(failure: Failure) -> None:
            if self._failure is None:
                self._failure = failure

        return self._lock.run(self._run, self._job_write, data).addCallbacks(lambda _: None, remember)

    async def _drain(self) -> None:
        if self._last is not None:
            await self._last
        if self._failure is not None:
            self._open = False
            self._failure.raiseException()

    def _check_open(self) -> None:
        if self._failure is not None:  # a failed writer keeps reporting why
            self._failure.raiseException()
        if not self._open:
            raise ValueError("blob writer is closed")

    def write(self, data: bytes) -> Deferred[None]:
        """Buffer ``data``; once a chunk is buffered, hand it to a thread (see class doc)."""
        return Deferred.fromCoroutine(self._write(data))

    async def _write(self, data: bytes) -> None:
        self._check_open()
        if not self._buf and len(data) >= CHUNK:
            chunk: bytes | bytearray = bytes(data)  # no-op for bytes; the caller may reuse a bytearray
        else:
            self._buf += data
            if len(self._buf) < CHUNK:
                return
            chunk, self._buf = self._buf, bytearray()  # handed over whole: no copy
        previous, self._last = self._last, self._start(chunk)
        if previous is not None:
            await previous
        if self._failure is not None:
            await self._drain()

    def commit(self) -> Deferred[BlobInfo]:
        """Finish: the content address and plaintext size; the blob is durable once this fires."""
        return Deferred.fromCoroutine(self._commit())

    async def _commit(self) -> BlobInfo:
        self._check_open()
        await self._drain()
        self._open = False
        rest, self._buf = bytes(self._buf), bytearray()
        info: BlobInfo = await self._lock.run(self._run, self._job_commit, rest)
        return info

    def abort(self) -> Deferred[None]:
        """Discard everything written; nothing stays behind. Harmless after commit or failure."""
        return Deferred.fromCoroutine(self._abort())

    async def _abort(self) -> None:
        self._open = False
        self._buf = bytearray()
        if self._last is not None:
            await self._last  # let the running job finish before discarding under it
        if self._writer is not None:
            await self._lock.run(self._run, self._writer.abort)


class BlobStore:
    """Async blob store: the SyncBlobStore operations run in threads, returning Deferreds.

    ``run_in_thread(f, *args) -> Deferred`` is ``twisted.internet.threads.deferToThread`` in
    the daemon (or a pool-bound variant); tests pass a synchronous double.
    """

    def __init__(self, backend: BlobBackend, master_key: bytes, address_key: bytes,
                 run_in_thread: RunInThread) -> None:
        self.sync = SyncBlobStore(backend, master_key, address_key)
        self._run = run_in_thread

    def writer(self) -> BlobWriter:
        """A streaming writer; nothing touches the backend until the first chunk is full."""
        return BlobWriter(self.sync, self._run)

    def put(self, data: bytes) -> Deferred[BlobInfo]:
        """Store a small blob in one thread job."""
        return self._run(self.sync.put, data)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Deferred[bytes]:
        """Plaintext ``[start, end)`` in one thread job; for small blobs and ranges."""
        return self._run(self.sync.read, key, start, end)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        """Stream plaintext ``[start, end)``.

        A malformed key or range raises at once; BlobNotFound and BlobCorrupt on a read.
        """
        return BlobReader(self._run, self.sync.open(key, start, end))

    def stream(self, key: str, start: int = 0, end: int | None = None, size: int = BATCH) -> BlobReader:
        """Like ``open`` but each thread job reads and decrypts ~``size`` bytes (GET of big files)."""
        return BlobReader(self._run, self.sync.batches(key, start, end, size))

    def size(self, key: str) -> Deferred[int]:
        return self._run(self.sync.size, key)

    def exists(self, key: str) -> Deferred[bool]:
        return self._run(self.sync.exists, key)

    def delete(self, key: str) -> Deferred[None]:
        return self._run(self.sync.delete, key)

    def check(self) -> Deferred[None]:
        return self._run(self.sync.check)
