"""Opened ENVELOPE / BODY / BODYSTRUCTURE of recently fetched messages (issue 21).

A client's header sync (``FETCH 1:* (... ENVELOPE)``) reads the same messages again and again;
with encryption at rest each read was a base64 decode and an AES-GCM open per message, about
half of a 10,000-message FETCH. The opened values are kept here, bounded by their total length
(oldest out first), keyed by (owner, blob): a blob's rendered metadata never changes, and a
value is only ever put by a read that opened it with that owner's key. It lives in process
memory only, as the keyring's unwrapped keys and the body cache (raw messages) do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

Meta = tuple[str, str, str]


class OpenedMeta:
    """Bounded (owner, blob) → opened metadata. Reads are plain dict lookups (database threads
    share it); puts and evictions hold the lock."""

    def __init__(self, max_chars: int = 32 * 1024 * 1024) -> None:
        self.max_chars = max_chars
        self._items: dict[tuple[int, str], Meta] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, user_id: int, blob_key: str) -> Meta | None:
        return self._items.get((user_id, blob_key))

    def put_many(self, user_id: int, values: Iterable[tuple[str, Meta]]) -> None:
        with self._lock:
            for blob_key, meta in values:
                key = (user_id, blob_key)
                if key in self._items:
                    continue
                size = sum(map(len, meta)) + len(blob_key)
                if size > self.max_chars:
                    continue
                self._items[key] = meta
                self._chars += size
            while self._chars > self.max_chars and self._items:
                (_, old_key), old = self._pop_oldest()
                self._chars -= sum(map(len, old)) + len(old_key)

    def _pop_oldest(self) -> tuple[tuple[int, str], Meta]:
        key = next(iter(self._items))
        return key, self._items.pop(key)

    def forget(self, user_id: int | None = None) -> None:
        """Drop one user's entries (None: everyone's)."""
        with self._lock:
            if user_id is None:
                self._items.clear()
                self._chars = 0
                return
            for key in [k for k in self._items if k[0] == user_id]:
                meta = self._items.pop(key)
                self._chars -= sum(map(len, meta)) + len(key[1])
