"""SQL of the blob sweeper: which stored blobs no row references, and deleting one safely.

Every blob in the backend belongs to mail (``messages``, ``outbound_queue``, counted in
``mail_blobs``), to files (``file_nodes``, counted in ``file_blobs``) or to chat attachments
(``msg_attachments``: random ciphertext, one row per blob, never shared); each uses its own
address key, so a key is one or the other, and the sweeper checks them all. A blob is written
before the row that references it commits, so after a kill -9 blobs without rows remain. The
sweeper deletes such a blob with the same protocol as the two collectors
(``tau.mail.store.blobrefs``, ``tau.files.blobrefs``): inside a transaction that holds the key's
refcount rows (inserted at refs 0 when absent), so a writer referencing the same content either
commits first (the sweeper then sees the reference and keeps the blob) or waits and then finds
the blob gone (its own ``exists`` check makes it store the bytes again or refuse: never a row
without its blob). A grace period on the blob's age keeps the sweeper off blobs whose writer
has not committed its row yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.storage.database import Txn, placeholders

CHUNK = 200


def referenced(txn: Txn, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that some row references or counts (one indexed probe per table)."""
    found: set[str] = set()
    for i in range(0, len(keys), CHUNK):
        part = list(keys[i:i + CHUNK])
        m = placeholders(len(part))
        rows = txn.query(
            f"SELECT blob_key FROM file_blobs WHERE refs > 0 AND blob_key IN ({m})"
            f" UNION SELECT blob_key FROM mail_blobs WHERE refs > 0 AND blob_key IN ({m})"
            f" UNION SELECT blob_key FROM file_nodes WHERE blob_key IN ({m})"
            f" UNION SELECT blob_key FROM file_versions WHERE blob_key IN ({m})"
            f" UNION SELECT blob_key FROM file_upload_parts WHERE blob_key IN ({m})"
            f" UNION SELECT blob_key FROM messages WHERE blob_key IN ({m})"
            f" UNION SELECT blob_key FROM mail_purge_pending WHERE blob_key IN ({m})"
            f" UNION SELECT blob_key FROM outbound_queue WHERE status IN ('queued', 'sending') AND blob_key IN ({m})"
            f" UNION SELECT blob_key FROM msg_attachments WHERE blob_key IN ({m})",
            part * 9)
        found |= {r[0] for r in rows}
    return found


def _claim(txn: Txn, table: str, key: str) -> bool:
    """Hold the key's refcount row (insert it at 0 when absent); True when this inserted it."""
    row = txn.query_one(f"INSERT INTO {table} (blob_key, refs) VALUES (?, 0) ON CONFLICT (blob_key) DO NOTHING"
                        " RETURNING blob_key", (key,))
    return row is not None


def sweep_key(txn: Txn, backend: Any, key: str) -> bool:
    """Delete ``key``'s blob when nothing references it, under its refcount rows; True if deleted."""
    mine = {table: _claim(txn, table, key) for table in ("file_blobs", "mail_blobs")}
    if referenced(txn, [key]):
        for table, inserted in mine.items():
            if inserted:
                txn.execute(f"DELETE FROM {table} WHERE blob_key = ? AND refs = 0", (key,))
        return False
    for table in ("file_blobs", "mail_blobs", "message_text", "message_headers", "message_sort_keys", "mail_content"):
        txn.execute(f"DELETE FROM {table} WHERE blob_key = ?", (key,))
    backend.delete(key)  # last: when it fails the transaction rolls back and the next sweep retries
    return True


def take_lease(txn: Txn, name: str, holder: str, now: int, ttl: int) -> bool:
    """Hold the job ``name`` until ``now + ttl`` unless another holder's lease is still running."""
    row = txn.query_one("INSERT INTO job_leases (name, holder, until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                        " SET holder = excluded.holder, until = excluded.until"
                        " WHERE job_leases.until <= ? OR job_leases.holder = excluded.holder RETURNING holder",
                        (name, holder, now + ttl, now))
    return row is not None and row[0] == holder
