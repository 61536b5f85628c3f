"""Reference counts for the content-addressed blobs file rows point at.

Identical content is stored once, so a blob may be deleted only when no file row uses it.
``file_blobs.refs`` counts those rows. The race to avoid: a delete drops the last reference
while an upload of the same bytes finds the blob already stored (the upload is deduplicated
away) and then references it. So a blob is deleted only as the last step of the transaction
that deletes its ``file_blobs`` row, and a transaction that creates the row checks that the
blob exists (it then fails with ``BlobMissing`` and the client retries) — the same protocol as
``tau.mail.store.blobrefs``, on the same ledger (:mod:`tau.blobs.refstore`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tau.blobs.refstore import FILES
from tau.storage.database import Txn


class BlobMissing(Exception):
    """The blob was collected between its upload and this reference; upload again."""


def ref_blob(txn: Txn, blobs: Any, key: str, count: int = 1) -> None:
    """Add ``count`` references; when the row is new, the blob must still exist."""
    fresh = FILES.add(txn, key, count)
    if fresh is None:  # pragma: no cover - needs a collector winning five times in a row
        raise BlobMissing(f"blob {key} is being collected; upload again")
    if fresh and not blobs.exists(key):
        raise BlobMissing(f"blob {key} is no longer stored")


class Collector:
    """Blob keys that lost references in this transaction; ``collect`` deletes the orphans."""

    def __init__(self, blobs: Any) -> None:
        self.blobs = blobs
        self.keys: dict[str, int] = {}

    def unref(self, key: str | None, count: int = 1) -> None:
        if key:
            self.keys[key] = self.keys.get(key, 0) + count

    def unref_all(self, keys: Iterable[str | None]) -> None:
        for key in keys:
            self.unref(key)

    def collect(self, txn: Txn) -> list[str]:
        """Apply the decrements; delete rows and blobs that reach zero. Call last in the txn."""
        gone = []
        for key, count in self.keys.items():
            refs = FILES.decrement(txn, key, count)
            if refs is not None and refs <= 0:
                FILES.remove(txn, key)
                gone.append(key)
        for key in gone:
            self.blobs.delete(key)
        return gone


def drop_if_unreferenced(txn: Txn, blobs: Any, key: str) -> bool:
    """After a failed store: delete a freshly uploaded blob that no row references."""
    if not FILES.has(txn, key):
        blobs.delete(key)
        return True
    return False


def leaked(txn: Txn, blobs_keys: Iterable[str]) -> list[str]:
    """Keys present in the store that no row references (for tests and ``tau check``)."""
    known = FILES.keys(txn)
    return [k for k in blobs_keys if k not in known]


def collect_orphans(txn: Txn, blobs: Any, limit: int = 1000) -> int:
    """Delete blobs whose rows vanished without a decrement (a deleted user's cascade)."""
    keys = FILES.orphans(txn, limit)
    for key in keys:
        FILES.remove(txn, key)
    for key in keys:
        blobs.delete(key)
    return len(keys)
