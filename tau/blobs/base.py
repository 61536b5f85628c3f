"""The blob backend interface, its errors and key validation.

A backend stores opaque (already encrypted) bytes under a content address. It is synchronous
and runs in a worker thread; ``tau.blobs.store`` adds encryption and the async facade. The
operations are chosen so that S3 maps onto them directly: ``read_range`` is a ranged GET,
``Upload`` is a multipart upload (parts buffered by ``write``, completed by ``commit``), and
``size``/``exists`` are a HEAD.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Protocol

KEY_RE = re.compile(r"[0-9a-f]{64}")


class BlobError(Exception):
    """Base class of every blob store error."""


class BlobNotFound(BlobError, KeyError):
    """No blob under that key (a KeyError too, so ``except KeyError`` also works)."""

    def __str__(self) -> str:  # KeyError would repr() the argument
        return f"no blob {self.args[0]}" if self.args else "no such blob"


class BlobCorrupt(BlobError):
    """Stored bytes fail authentication: tampered, truncated, reordered, or the wrong master key."""


class BlobStoreUnavailable(BlobError):
    """The backend cannot serve requests (missing folder, read-only disk, S3 down)."""


class InvalidBlobKey(BlobError, ValueError):
    """A key that is not 64 lowercase hex digits; rejected before it reaches a path or URL."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a well-formed content address, else raise InvalidBlobKey.

    Keys become file names and object names, so anything but ``[0-9a-f]{64}`` (``../x``,
    ``/etc/passwd``, upper case, a trailing newline) is refused outright.
    """
    if not isinstance(key, str) or KEY_RE.fullmatch(key) is None:
        raise InvalidBlobKey(f"invalid blob key {key!r}")
    return key


class RangeSource(Protocol):
    """Stored bytes of one range, read into the caller's buffer (no per-read allocation)."""

    def readinto(self, view: memoryview) -> int:
        """Fill up to ``len(view)`` bytes; fewer only at the end of the range (0: the end)."""

    def close(self) -> None:
        """Release the file or connection."""


class PieceSource:
    """A RangeSource over an iterator of byte pieces (what ``read_range`` yields)."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._rest = memoryview(b"")

    def readinto(self, view: memoryview) -> int:
        got, want = 0, len(view)
        while got < want:
            if not self._rest:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._rest = memoryview(piece)
            n = min(len(self._rest), want - got)
            view[got:got + n] = self._rest[:n]
            self._rest = self._rest[n:]
            got += n
        return got

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class Upload(ABC):
    """One pending blob: bytes are appended, then published under a key or thrown away."""

    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append raw bytes (the caller writes ciphertext in order). ``data`` may be a view of a
        buffer the caller reuses: consume (write or copy) it before returning."""

    @abstractmethod
    def commit(self, key: str) -> bool:
        """Durably publish the upload under ``key``.

        Returns True if stored, False if ``key`` already existed and this upload was discarded
        (content addressing makes both copies equivalent). Once this returns, the blob survives
        a crash. On error the upload is discarded.
        """

    @abstractmethod
    def abort(self) -> None:
        """Discard the upload; idempotent, and a no-op after commit."""


class BlobBackend(ABC):
    """Raw byte storage keyed by content address; every method blocks."""

    @abstractmethod
    def new_upload(self) -> Upload:
        """Start an upload; an Upload that is dropped without commit leaves nothing behind."""

    @abstractmethod
    def read_range(self, key: str, offset: int, length: int | None = None) -> Iterator[bytes]:
        """Yield stored bytes ``[offset, offset+length)`` (to the end if ``length`` is None).

        A range past the end yields fewer bytes (or none). BlobNotFound may be raised by the
        call or by the first iteration. Closing the iterator releases the underlying file or
        connection.
        """

    def open_range(self, key: str, offset: int, length: int) -> RangeSource:
        """Stored bytes ``[offset, offset+length)`` as a RangeSource (BlobNotFound if absent).

        The default adapts ``read_range``; a backend that can read into a buffer directly
        (local files) overrides it and saves a copy per byte on large reads.
        """
        return PieceSource(self.read_range(key, offset, length))

    @abstractmethod
    def size(self, key: str) -> int:
        """Stored size in bytes; BlobNotFound if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a committed blob is stored under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; deleting an absent key is not an error (callers retry)."""

    @abstractmethod
    def check(self) -> None:
        """Health probe: raise BlobStoreUnavailable with a one-line reason if unusable."""

    def list_older(self, cutoff: float) -> Iterator[str]:
        """Keys of committed blobs last written before ``cutoff`` (epoch seconds), for the sweeper
        of unreferenced blobs (``tau.blobs.sweeper``); uploads in progress are never listed."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its blobs")
