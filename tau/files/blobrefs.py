"""Reference counts for the content-addressed blobs file rows point at.

Identical content is stored once, so a blob may be deleted only when no file row uses it.
``file_blobs.refs`` counts those rows. The race to avoid: a delete drops the last reference
while an upload of the same bytes finds the blob already stored (the upload is deduplicated
away) and then references it. So a blob is deleted only as the last step of the transaction
that deletes its ``file_blobs`` row, and a transaction that creates the row checks that the
blob exists (it then fails with ``BlobMissing`` and the client retries) — the same protocol as
``tau.mail.store.blobrefs``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tau.storage.database import Txn


class BlobMissing(Exception):
    """The blob was collected between its upload and this reference; upload again."""


def ref_blob(txn: Txn, blobs: Any, key: str, count: int = 1) -> None:
    """Add ``count`` references; when the row is new, the blob must still exist."""
    row = txn.query_one("INSERT INTO file_blobs (blob_key, refs) VALUES (?, ?) ON CONFLICT (blob_key)"
                        " DO UPDATE SET refs = file_blobs.refs + excluded.refs RETURNING refs", (key, count))
    if row is not None and int(row[0]) == count and not blobs.exists(key):
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
            row = txn.query_one("UPDATE file_blobs SET refs = refs - ? WHERE blob_key = ? RETURNING refs",
                                (count, key))
            if row is not None and int(row[0]) <= 0:
                txn.execute("DELETE FROM file_blobs WHERE blob_key = ?", (key,))
                gone.append(key)
        for key in gone:
            self.blobs.delete(key)
        return gone


def drop_if_unreferenced(txn: Txn, blobs: Any, key: str) -> bool:
    """After a failed store: delete a freshly uploaded blob that no row references."""
    if txn.query_one("SELECT 1 FROM file_blobs WHERE blob_key = ?", (key,)) is None:
        blobs.delete(key)
        return True
    return False


def leaked(txn: Txn, blobs_keys: Iterable[str]) -> list[str]:
    """Keys present in the store that no row references (for tests and ``tau check``)."""
    known = {r[0] for r in txn.query("SELECT blob_key FROM file_blobs")}
    return [k for k in blobs_keys if k not in known]


def collect_orphans(txn: Txn, blobs: Any, limit: int = 1000) -> int:
    """Delete blobs whose rows vanished without a decrement (a deleted user's cascade)."""
    keys = [r[0] for r in txn.query("SELECT b.blob_key FROM file_blobs b WHERE NOT EXISTS"
                                    " (SELECT 1 FROM file_nodes n WHERE n.blob_key = b.blob_key) LIMIT ?", (limit,))]
    for key in keys:
        txn.execute("DELETE FROM file_blobs WHERE blob_key = ?", (key,))
    for key in keys:
        blobs.delete(key)
    return len(keys)
