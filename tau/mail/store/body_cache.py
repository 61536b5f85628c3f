"""A small, bounded cache of recently read message bodies (decrypted), shared by every session.

Clients read again what they just read: a body right after its headers, the message a phone just
showed in a notification, the same message from a second device. Each read otherwise costs a file
open and a decryption. Only messages of at most :data:`ITEM_MAX` octets (one blob chunk: reading
them whole costs no more decryption than reading any part) are kept, least recently used first
out, up to :data:`TOTAL_MAX` octets in all: the cache never holds more than 16 MiB of bodies,
whatever the load, so the daemon's RSS stays bounded.

Keys are blob keys: content addresses, so an entry can never be stale (a body never changes).
Entries of blobs the store may delete are dropped at once (``discard``), so plaintext does not
outlive its message. Reactor thread only (no lock).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

ITEM_MAX = 64 * 1024
TOTAL_MAX = 16 * 1024 * 1024


class BodyCache:
    def __init__(self, total_max: int = TOTAL_MAX, item_max: int = ITEM_MAX) -> None:
        self.total_max = total_max
        self.item_max = min(item_max, total_max)
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        """Keep ``body`` if it is small enough, evicting the least recently used."""
        if len(body) > self.item_max:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._entries[key] = body
        self.size += len(body)
        while self.size > self.total_max:
            _, gone = self._entries.popitem(last=False)
            self.size -= len(gone)

    def discard(self, keys: Iterable[str]) -> None:
        for key in keys:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old)


#: ``(blob_key, message size, start, end)``: one byte range of one message
Wanted = tuple[str, int, int, int]


class BodyReader:
    """Byte ranges of many messages at once (FETCH of a range of bodies): cached small bodies are
    sliced on the reactor, everything else is read in **one** thread job for the whole batch,
    small messages whole (``read_small``: one open, one decryption pass, then cached), bigger
    ones only the range asked for."""

    def __init__(self, blobs: Any, run_in_thread: Any, cache: BodyCache | None = None) -> None:
        self._blobs = blobs  # a SyncBlobStore
        self._run_in_thread = run_in_thread
        self.cache = cache or BodyCache()

    async def read(self, wanted: Sequence[Wanted]) -> list[bytes]:
        small = {key for key, size, start, end in wanted if size <= self.cache.item_max and end > start}
        bodies = {key: body for key in small if (body := self.cache.get(key)) is not None}
        whole = [key for key in small if key not in bodies]
        ranges = list(dict.fromkeys((key, start, end) for key, _, start, end in wanted
                                    if key not in small and end > start))
        parts: dict[tuple[str, int, int], bytes] = {}
        if whole or ranges:
            read, parts = await self._run_in_thread(_read_all, self._blobs, whole, ranges)
            for key, body in read.items():
                self.cache.put(key, body)
            bodies.update(read)
        return [b"" if end <= start else bodies[key][start:end] if key in bodies else parts[(key, start, end)]
                for key, _, start, end in wanted]


def _read_all(blobs: Any, whole: list[str], ranges: list[tuple[str, int, int]]
              ) -> tuple[dict[str, bytes], dict[tuple[str, int, int], bytes]]:
    """Thread side of BodyReader.read."""
    return ({key: blobs.read_small(key) for key in whole},
            {(key, start, end): blobs.read(key, start, end) for key, start, end in ranges})
