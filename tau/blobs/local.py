"""Local disk backend: small blobs in pack files (``tau.blobs.pack``), others one file per blob
under ``root/ab/<key>`` (256 folders, as git does).

A blob whose stored bytes stay within ``pack_threshold`` is buffered in memory and appended to
the process's pack, where concurrent writers share one fsync; a bigger one spills to a temp file.

Uploads go to ``root/tmp`` (same filesystem, so the final rename is atomic) and are published
only after the file and the directory entries are fsynced: a committed blob survives power
loss, and a crash mid-upload leaves only a temp file that ``sweep_tmp`` removes later.

Earlier versions used two levels, ``root/ab/cd/<key>``: with 65,536 leaf folders nearly every
new blob of a young store created its folder, which cost a third fsync (the new folder's entry)
on every upload. Blobs stored that way are still found there (reads, ``exists``, ``delete``).
"""

from __future__ import annotations

import os
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from tau.blobs.base import (
    KEY_RE,
    BlobBackend,
    BlobNotFound,
    BlobStoreUnavailable,
    PieceSource,
    RangeSource,
    Upload,
    validate_key,
)
from tau.blobs.crypto import file_reader
from tau.blobs.pack import PackStore

READ_BLOCK = 256 * 1024
PACK_THRESHOLD = 64 * 1024 + 1024  # stored bytes: 64 KiB of plaintext plus the encryption's overhead
TMP_MAX_AGE = 24 * 3600


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _TempFile:
    """The temp file of an upload; separate from LocalUpload so a finalizer can own it."""

    def __init__(self, tmp_dir: Path) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="up-")  # mode 0600
        self.fd: int | None = fd
        self.path = Path(name)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard(self) -> None:
        try:
            self.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class _FileRange:
    """A byte range of a blob file read with ``preadv`` straight into the caller's buffer."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd: int | None = fd
        self._pos = offset
        self._left = length
        self._cleanup = weakref.finalize(self, os.close, fd)

    def readinto(self, view: memoryview) -> int:
        if self._fd is None:
            raise ValueError("range is closed")
        got, want = 0, min(len(view), self._left)
        while got < want:
            n = os.preadv(self._fd, [view[got:want]], self._pos)
            if n == 0:
                break
            got += n
            self._pos += n
        self._left -= got
        return got

    def close(self) -> None:
        self._fd = None
        self._cleanup()


class LocalUpload(Upload):
    """A blob being written to a temp file; removed when aborted or garbage collected."""

    def __init__(self, backend: LocalBackend) -> None:
        self._backend = backend
        self._tmp = _TempFile(backend.tmp)
        # Runs discard() on abort, on error, or when the upload is dropped without commit.
        self._cleanup = weakref.finalize(self, self._tmp.discard)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes; any error discards the upload."""
        if self._tmp.fd is None:
            raise ValueError("upload is closed")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._tmp.fd, view):]
        except BaseException:
            self._cleanup()
            raise

    def commit(self, key: str) -> bool:
        """fsync, then rename into place and fsync the directory; False if deduplicated."""
        if self._tmp.fd is None:
            raise ValueError("upload is closed")
        try:
            final = self._backend.path_for(key)
            os.fsync(self._tmp.fd)
            self._tmp.close()
            if final.exists() or self._backend.legacy_path(key).exists():
                # same content address: same plaintext, keep the first copy
                self._cleanup()
                return False
            self._backend.make_dirs(final.parent)
            os.replace(self._tmp.path, final)
            _fsync_dir(final.parent)
        except BaseException:
            self._cleanup()
            raise
        self._cleanup.detach()
        return True

    def abort(self) -> None:
        """Close and remove the temp file; idempotent."""
        self._cleanup()


class SmallFirstUpload(Upload):
    """Held in memory while within the pack threshold (then appended to a pack), spilled to a
    temp file (a LocalUpload) once bigger."""

    def __init__(self, backend: LocalBackend) -> None:
        self._backend = backend
        self._buf: bytearray | None = bytearray()
        self._file: LocalUpload | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        if self._buf is None:
            raise ValueError("upload is closed")
        self._buf += data
        if len(self._buf) > self._backend.pack_threshold:
            self._file = LocalUpload(self._backend)
            buf, self._buf = self._buf, None
            self._file.write(buf)

    def commit(self, key: str) -> bool:
        if self._file is not None:
            return self._file.commit(key)
        if self._buf is None:
            raise ValueError("upload is closed")
        buf, self._buf = self._buf, None
        validate_key(key)
        if self._backend.path_for(key).exists() or self._backend.legacy_path(key).exists():
            return False
        return self._backend.packs.put(key, bytes(buf))

    def abort(self) -> None:
        self._buf = None
        if self._file is not None:
            self._file.abort()


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _subdirs(root: Path) -> list[Path]:
    """The fan-out folders ``root/ab`` (two hex digits), never ``root/tmp``."""
    return [Path(e.path) for e in _entries(root) if len(e.name) == 2 and e.is_dir(follow_symlinks=False)
            and all(c in "0123456789abcdef" for c in e.name)]


def _old_blob(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return (KEY_RE.fullmatch(entry.name) is not None and entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff)
    except FileNotFoundError:
        return False


class LocalBackend(BlobBackend):
    """Blobs as files under ``path``; ``path/tmp`` holds uploads in progress."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True,
                 pack_threshold: int = PACK_THRESHOLD) -> None:
        """With ``create``, make ``path`` (but not its parents: a missing mount stays missing).
        ``pack_threshold`` 0 stores every blob as a file."""
        self.root = Path(path).absolute()
        self.tmp = self.root / "tmp"
        self.packs = PackStore(self.root / "packs")
        self.pack_threshold = pack_threshold
        if create:
            for folder in (self.root, self.tmp):
                try:
                    folder.mkdir(mode=0o700, exist_ok=True)
                except OSError:
                    pass  # check() reports it with a reason

    def path_for(self, key: str) -> Path:
        """The file of ``key``; validation keeps every key inside the root."""
        validate_key(key)
        return self.root / key[:2] / key

    def legacy_path(self, key: str) -> Path:
        """Where versions with two folder levels stored ``key``."""
        validate_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _open(self, key: str) -> int:
        """A read-only descriptor of ``key`` (either layout); BlobNotFound if stored in neither."""
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        for path in (self.path_for(key), self.legacy_path(key)):
            try:
                return os.open(path, flags)
            except FileNotFoundError:
                continue
        raise BlobNotFound(key)

    def make_dirs(self, folder: Path) -> None:
        """Create the fan-out folders, fsyncing each parent so the new entries are durable."""
        missing = []
        while folder != self.root and not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                continue
            _fsync_dir(folder.parent)

    def new_upload(self) -> Upload:
        return SmallFirstUpload(self) if self.pack_threshold > 0 else LocalUpload(self)

    def read_range(self, key: str, offset: int, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length}")
        validate_key(key)
        return self._read(key, offset, length)

    def _read(self, key: str, offset: int, length: int | None) -> Iterator[bytes]:
        packed = self.packs.read(key, offset, length)
        if packed is not None:
            yield packed
            return
        with open(self._open(key), "rb", buffering=0) as fh:
            yield from file_reader(fh, READ_BLOCK)(offset, length)

    def open_range(self, key: str, offset: int, length: int) -> RangeSource:
        if offset < 0 or length < 0:
            raise ValueError(f"bad range offset={offset} length={length}")
        validate_key(key)
        packed = self.packs.read(key, offset, length)
        if packed is not None:
            return PieceSource(iter([packed]))
        return _FileRange(self._open(key), offset, length)

    def size(self, key: str) -> int:
        validate_key(key)
        loc = self.packs.find(key)
        if loc is not None:
            return loc.length
        for path in (self.path_for(key), self.legacy_path(key)):
            try:
                return path.stat().st_size
            except FileNotFoundError:
                continue
        raise BlobNotFound(key)

    def exists(self, key: str) -> bool:
        if self.packs.find(validate_key(key)) is not None:
            return True
        return self.path_for(key).is_file() or self.legacy_path(key).is_file()

    def delete(self, key: str) -> None:
        self.packs.delete(validate_key(key))
        for path in (self.path_for(key), self.legacy_path(key)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def check(self) -> None:
        if not self.root.is_dir():
            raise BlobStoreUnavailable(f"blob folder {self.root} does not exist")
        try:
            self.tmp.mkdir(mode=0o700, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix="probe-")
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            raise BlobStoreUnavailable(f"blob folder {self.tmp} is not writable: "
                                       f"{exc.strerror or exc}") from exc

    def list_older(self, cutoff: float) -> Iterator[str]:
        """Packed blobs written and blob files (both layouts) modified before ``cutoff``;
        ``tmp/`` is not looked at."""
        yield from self.packs.older(cutoff)
        for top in _subdirs(self.root):
            for entry in _entries(top):
                if entry.is_dir(follow_symlinks=False):
                    yield from (e.name for e in _entries(Path(entry.path)) if _old_blob(e, cutoff))
                elif _old_blob(entry, cutoff):
                    yield entry.name

    def compact(self) -> int:
        """Rewrite pack files that are mostly deleted blobs; returns how many were removed."""
        return self.packs.compact()

    def sweep_tmp(self, max_age: float = TMP_MAX_AGE) -> int:
        """Remove temp files older than ``max_age`` seconds (crash leftovers); returns the count."""
        cutoff, removed = time.time() - max_age, 0
        try:
            entries = list(os.scandir(self.tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
