"""A streaming ZIP writer (APPNOTE 6.3.x): stored entries, data descriptors, ZIP64 throughout.

Folder downloads are produced on the fly: each entry's local header goes out first, then its
bytes as they are read from the blob store, then a data descriptor with the CRC and sizes
(general purpose flag bit 3), so nothing is buffered and the archive size is not bounded by
memory. ZIP64 records are always written, so entries and archives over 4 GiB work.
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

_FLAGS = 0x0808  # bit 3: sizes in a data descriptor; bit 11: UTF-8 names
_VERSION = 45  # ZIP64


def _dos_time(epoch: float) -> tuple[int, int]:
    t = time.gmtime(max(epoch, 315532800))  # DOS dates start in 1980
    dostime = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return dostime, ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


@dataclass
class _Entry:
    name: bytes
    offset: int
    crc: int
    size: int
    dostime: int
    dosdate: int
    folder: bool


class ZipStream:
    """Call ``begin``/``data``/``end`` per entry, then ``finish``; each returns bytes to send."""

    def __init__(self) -> None:
        self.offset = 0
        self.entries: list[_Entry] = []
        self._current: _Entry | None = None

    def _out(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def begin(self, name: str, modified: float, folder: bool = False) -> bytes:
        raw = (name.rstrip("/") + ("/" if folder else "")).encode("utf-8")
        dostime, dosdate = _dos_time(modified)
        self._current = _Entry(raw, self.offset, 0, 0, dostime, dosdate, folder)
        extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, _FLAGS, 0, dostime, dosdate, 0,
                           0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra))
        return self._out(head + raw + extra)

    def data(self, chunk: bytes) -> bytes:
        assert self._current is not None
        self._current.crc = zlib.crc32(chunk, self._current.crc)
        self._current.size += len(chunk)
        return self._out(chunk)

    def end(self) -> bytes:
        entry, self._current = self._current, None
        assert entry is not None
        self.entries.append(entry)
        return self._out(struct.pack("<IIQQ", 0x08074B50, entry.crc, entry.size, entry.size))

    def finish(self) -> bytes:
        start = self.offset
        out = bytearray()
        for e in self.entries:
            extra = struct.pack("<HHQQQ", 1, 24, e.size, e.size, e.offset)
            attrs = ((0o40755 if e.folder else 0o100644) << 16) | (0x10 if e.folder else 0)
            out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | _VERSION, _VERSION, _FLAGS, 0,
                               e.dostime, e.dosdate, e.crc, 0xFFFFFFFF, 0xFFFFFFFF, len(e.name), len(extra), 0,
                               0, 0, attrs, 0xFFFFFFFF)
            out += e.name + extra
        size = len(out)
        end64 = start + size
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _VERSION, _VERSION, 0, 0, len(self.entries),
                           len(self.entries), size, start)
        out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
        return self._out(bytes(out))
