"""Append-only pack files for small blobs (like Dovecot's mdbox), with group fsync.

A blob file costs a file fsync, a rename and a folder fsync; a pack record costs one append,
and concurrent writers share one ``fdatasync``: the first writer to need the sync runs it for
everything appended so far, and writers arriving meanwhile wait for the next one (no fixed
delay: a lone writer syncs at once). ``put`` returns only once its record is on disk.

Layout: ``root/packs/NNNNNNNN.pack``, a sequence of records::

    magic b"TPK1" | kind u8 | key 32 bytes | length u32 | written u32 (epoch s) | crc32 u32 | data

``kind`` 0 holds a blob's stored (encrypted) bytes; kind 1 is a tombstone whose data names the
record it deletes (pack u32, offset u64), so a later put of the same content is never undone.
The crc covers the header and data: a torn tail (crash mid-append) fails it and the scan of that
pack stops there. Each process appends only to a pack it created (``O_EXCL``) and holds under
``flock``; the index (key -> pack, offset, length) lives in memory, built by scanning the packs
and refreshed from their tails when a key is not found (another process may have written it).
``compact`` rewrites a pack that is mostly dead: live records are appended to the active pack
and synced before the old pack is unlinked, so a crash leaves at worst a duplicate.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEAD = struct.Struct(">4sB32sIII")
MAGIC = b"TPK1"
DATA, TOMB = 0, 1
TOMB_BODY = struct.Struct(">IQ")
PACK_ROLL = 64 * 1024 * 1024  # a pack this big is sealed and the next one started
FINAL_AFTER = 60  # seconds without a write before an unlocked pack counts as finished


@dataclass(frozen=True)
class Loc:
    """Where one blob's bytes are: pack number, offset of the data, its length, when written."""

    pack: int
    offset: int
    length: int
    written: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _crc(head: bytes, data: bytes | memoryview) -> int:
    return zlib.crc32(data, zlib.crc32(head[:HEAD.size - 4]))


def record(kind: int, key: bytes, data: bytes | memoryview, written: int) -> bytes:
    head = HEAD.pack(MAGIC, kind, key, len(data), written, 0)
    return HEAD.pack(MAGIC, kind, key, len(data), written, _crc(head, data)) + bytes(data)


def scan(path: Path, start: int = 0) -> Iterator[tuple[int, int, bytes, int, int, bytes | None]]:
    """(record offset, kind, key, length, written, tombstone body) of each whole record from
    ``start``; stops at the first torn or corrupt one. Data is read (to check the crc), not kept."""
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        while True:
            head = fh.read(HEAD.size)
            if len(head) < HEAD.size:
                return
            magic, kind, key, length, written, crc = HEAD.unpack(head)
            data = fh.read(length)
            if magic != MAGIC or kind not in (DATA, TOMB) or len(data) < length or _crc(head, data) != crc:
                return
            yield pos, kind, key, length, written, data if kind == TOMB else None
            pos += HEAD.size + length


def _appended_to(path: Path) -> bool:
    """Whether some process holds ``path`` as its pack (its flock)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock


class _Active:
    """The pack this process appends to, and its group fsync."""

    def __init__(self, number: int, fd: int) -> None:
        self.number, self.fd = number, fd
        self.written = 0
        self.synced = 0
        self.syncing = False
        self.cond = threading.Condition()

    def append(self, data: bytes) -> int:
        """Append under the lock; returns the record's offset (caller holds ``cond``)."""
        offset = self.written
        view = memoryview(data)
        while view:
            view = view[os.pwrite(self.fd, view, offset + len(data) - len(view)):]
        self.written += len(data)
        return offset

    def sync_through(self, end: int) -> None:
        """Return once bytes ``[0, end)`` are on disk; one writer syncs for all who wait."""
        with self.cond:
            while self.synced < end:
                if self.syncing:
                    self.cond.wait()
                    continue
                self.syncing, target = True, self.written
                self.cond.release()
                try:
                    os.fdatasync(self.fd)
                finally:
                    self.cond.acquire()
                    self.syncing = False
                    self.cond.notify_all()
                self.synced = max(self.synced, target)


class PackStore:
    """Small blobs in pack files under ``root``; thread-safe; every method blocks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._index: dict[bytes, Loc] = {}
        self._scanned: dict[int, int] = {}  # pack -> bytes scanned (whole records)
        self._sizes: dict[int, int] = {}  # pack -> file size when last scanned
        self._killed: set[tuple[int, int]] = set()
        self._active: _Active | None = None
        self._mine: set[int] = set()  # packs this process wrote: its index of them is complete
        self._final: set[int] = set()  # packs no process appends to any more: scanned for good
        self._loaded = False
        #: when set, ``put`` only appends: whoever acknowledges the write calls ``sync_pending``
        #: first (the daemon's database does, before each commit: one sync for blob and rows)
        self.defer_sync = False
        self._seen = threading.local()  # per thread: the furthest unsynced record it wrote or found

    # -- index ----------------------------------------------------------------------------

    def _packs(self) -> list[int]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if n.endswith(".pack") and n[:-5].isdigit())

    def path(self, number: int) -> Path:
        return self.root / f"{number:08d}.pack"

    def _refresh(self) -> None:
        """Index records other processes (or earlier runs) appended since the last look."""
        present = set()
        for number in self._packs():
            present.add(number)
            if number in self._mine or number in self._final:
                continue
            try:
                stat = self.path(number).stat()
            except FileNotFoundError:
                continue
            if self._sizes.get(number) != stat.st_size:
                self._sizes[number] = stat.st_size
                try:
                    self._index_from(number, self._scanned.get(number, 0))
                except FileNotFoundError:
                    continue
            if stat.st_mtime < time.time() - FINAL_AFTER and not _appended_to(self.path(number)):
                self._final.add(number)  # its writer is gone: it only changes by going away
        self._final &= present
        for number in [n for n in self._scanned if n not in present and n not in self._mine]:
            self._forget(number)  # compacted away by another process
        self._loaded = True

    def _index_from(self, number: int, start: int) -> None:
        end = start
        for pos, kind, key, length, written, body in scan(self.path(number), start):
            end = pos + HEAD.size + length
            if kind == DATA:
                if (number, pos) not in self._killed:
                    self._index[key] = Loc(number, pos + HEAD.size, length, written)
            elif body is not None and len(body) == TOMB_BODY.size:
                target = TOMB_BODY.unpack(body)
                self._killed.add(target)
                loc = self._index.get(key)
                if loc is not None and (loc.pack, loc.offset - HEAD.size) == target:
                    del self._index[key]
        self._scanned[number] = end

    def _forget(self, number: int) -> None:
        self._mine.discard(number)
        self._final.discard(number)
        self._scanned.pop(number, None)
        self._sizes.pop(number, None)
        self._killed = {k for k in self._killed if k[0] != number}
        for key in [k for k, loc in self._index.items() if loc.pack == number]:
            del self._index[key]

    def reload(self) -> None:
        """Forget the index and scan every pack again, as a new process would (tests, repair)."""
        with self._lock:
            own = self._active.number if self._active is not None else None
            self._index, self._scanned, self._sizes, self._killed = {}, {}, {}, set()
            self._mine, self._final = set(), set()
            self._refresh()
            if own is not None:
                self._mine.add(own)

    def find(self, key: str) -> Loc | None:
        raw = bytes.fromhex(key)
        with self._lock:
            loc = self._index.get(raw)
            if loc is None:
                self._refresh()
                loc = self._index.get(raw)
            active = self._active
            if loc is not None and active is not None and loc.pack == active.number:
                self._note(active, loc.offset + loc.length)  # a caller may reference it: sync first
            return loc

    def _note(self, active: _Active, end: int) -> None:
        if self.defer_sync and end > active.synced:
            seen = getattr(self._seen, "pending", None)
            if seen is None or seen[0] is not active or seen[1] < end:
                self._seen.pending = (active, end)

    # -- writing --------------------------------------------------------------------------

    def _open_active(self) -> _Active:
        """A new pack of this process (never one another process may still append to)."""
        self.root.mkdir(mode=0o700, exist_ok=True)
        number = max([0, *self._packs()]) + 1
        while True:
            try:
                fd = os.open(self.path(number), os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                             0o600)
                break
            except FileExistsError:
                number += 1
        fcntl.flock(fd, fcntl.LOCK_EX)
        _fsync_dir(self.root)  # the new pack's entry survives a crash
        self._scanned[number] = 0
        self._mine.add(number)
        return _Active(number, fd)

    def _append(self, rec: bytes) -> tuple[_Active, int]:
        with self._lock:
            if not self._loaded:
                self._refresh()
            active = self._active
            if active is None or active.written >= PACK_ROLL:
                old, active = active, self._open_active()
                if old is not None:  # no appends can reach it now: sync what it holds, release it
                    self._sizes[old.number] = old.written
                    _seal(old)  # before it stops being the one sync_pending looks at
                self._active = active
            with active.cond:
                offset = active.append(rec)
            return active, offset

    def put(self, key: str, data: bytes, written: int | None = None) -> bool:
        """Durably store ``data`` under ``key``; False when already stored (content addressing)."""
        if self.find(key) is not None:
            return False
        raw = bytes.fromhex(key)
        when = int(time.time()) if written is None else written
        rec = record(DATA, raw, data, when)
        active, offset = self._append(rec)
        if self.defer_sync:
            self._note(active, offset + len(rec))
        else:
            active.sync_through(offset + len(rec))
        with self._lock:
            self._index[raw] = Loc(active.number, offset + HEAD.size, len(data), when)
            self._scanned[active.number] = max(self._scanned.get(active.number, 0), offset + len(rec))
        return True

    def sync_pending(self) -> None:
        """Return once everything appended so far is on disk (one fsync shared by all who wait);
        nothing to do when it already is. The daemon calls it before a write transaction begins:
        the blobs it will reference were written before, by whichever thread."""
        active = self._active
        if active is not None:
            active.sync_through(active.written)

    def sync_seen(self) -> None:
        """Return once every unsynced record this thread appended or found since is on disk. The
        daemon calls it just before a commit: a blob stored (or found) inside the transaction."""
        seen = getattr(self._seen, "pending", None)
        if seen is not None:
            self._seen.pending = None
            seen[0].sync_through(seen[1])

    def delete(self, key: str) -> bool:
        """Forget ``key`` and append a tombstone (not synced: a lost one only leaves an orphan
        for the sweeper). False when it was not in a pack."""
        loc = self.find(key)
        if loc is None:
            return False
        raw = bytes.fromhex(key)
        self._append(record(TOMB, raw, TOMB_BODY.pack(loc.pack, loc.offset - HEAD.size), int(time.time())))
        with self._lock:
            self._killed.add((loc.pack, loc.offset - HEAD.size))
            if self._index.get(raw) == loc:
                del self._index[raw]
        return True

    # -- reading --------------------------------------------------------------------------

    def read(self, key: str, offset: int, length: int | None) -> bytes | None:
        """Stored bytes ``[offset, offset+length)`` of ``key``; None when not in a pack."""
        for _ in range(3):
            loc = self.find(key)
            if loc is None:
                return None
            n = max(0, loc.length - offset) if length is None else max(0, min(length, loc.length - offset))
            try:
                fd = os.open(self.path(loc.pack), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:  # compacted meanwhile: look again
                with self._lock:
                    self._refresh()
                continue
            try:
                return os.pread(fd, n, loc.offset + offset) if n else b""
            finally:
                os.close(fd)
        return None

    def older(self, cutoff: float) -> list[str]:
        with self._lock:
            self._refresh()
            return [k.hex() for k, loc in self._index.items() if loc.written < cutoff]

    def live_keys(self) -> list[str]:
        with self._lock:
            self._refresh()
            return [k.hex() for k in self._index]

    # -- compaction -----------------------------------------------------------------------

    def compact(self, min_dead: float = 0.5) -> int:
        """Rewrite sealed packs whose dead share is at least ``min_dead``; returns packs removed."""
        with self._lock:
            self._refresh()
            live: dict[int, int] = {}
            for loc in self._index.values():
                live[loc.pack] = live.get(loc.pack, 0) + HEAD.size + loc.length
            own = self._active.number if self._active is not None else -1
            candidates = [n for n, size in self._sizes.items()
                          if n != own and size > 0 and live.get(n, 0) <= size * (1 - min_dead)]
        return sum(self._compact_one(n) for n in candidates)

    def _compact_one(self, number: int) -> int:
        path = self.path(number)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process still appends to it
            except BlockingIOError:
                return 0
            moved: list[tuple[bytes, _Active, int, int, int]] = []
            end = 0
            for pos, kind, key, length, written, body in scan(path):
                keep = None
                if kind == DATA and self._index.get(key) == Loc(number, pos + HEAD.size, length, written):
                    keep = record(DATA, key, os.pread(fd, length, pos + HEAD.size), written)
                elif kind == TOMB and body is not None and TOMB_BODY.unpack(body)[0] not in (number,) \
                        and self.path(TOMB_BODY.unpack(body)[0]).exists():
                    keep = record(TOMB, key, body, written)
                if keep is not None:
                    active, offset = self._append(keep)
                    moved.append((key, active, offset, len(keep), kind))
                end = max(end, pos + HEAD.size + length)
            for _, active, offset, size, _ in moved:
                active.sync_through(offset + size)
            with self._lock:
                for key, active, offset, size, kind in moved:
                    old = self._index.get(key)
                    if kind == DATA and old is not None and old.pack == number:
                        self._index[key] = Loc(active.number, offset + HEAD.size, size - HEAD.size, old.written)
                os.unlink(path)
                self._forget(number)
            _fsync_dir(self.root)
            return 1
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._active is not None:
                _seal(self._active)
                self._active = None


def _seal(active: _Active) -> None:
    """Wait out the last syncs of a pack no longer appended to, then release it."""
    with active.cond:
        while active.syncing:
            active.cond.wait()
    active.sync_through(active.written)
    os.close(active.fd)
