"""Resumable uploads (``file_uploads``, ``file_upload_parts``): state kept between requests.

An upload declares its target path and size; each chunk is stored as its own blob and recorded
as a part at the offset it starts, so the committed offset survives a cut connection and a
restart. Part rows reference their blobs in ``file_blobs`` like file rows (the collector and the
sweeper leave them alone); completing or expiring the upload gives those references back.
The target path is sealed at rest under the uploader's key.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from tau.atrest.sealed import key
from tau.files.blobrefs import Collector, ref_blob
from tau.files.store import FilesError
from tau.storage.database import Txn


class Upload(NamedTuple):
    id: str
    user_id: int
    path: list[str]
    size: int
    committed: int
    content_type: str
    updated_at: int


def _context(upload_id: str) -> str:
    return f"file_uploads.path|{upload_id}"


def create(txn: Txn, user_id: int, upload_id: str, path: list[str], size: int, content_type: str) -> Upload:
    k = key(txn, user_id)
    t = int(txn.now)
    txn.execute("INSERT INTO file_uploads (id, user_id, path_s, kv, size, committed, content_type, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (upload_id, user_id, k.seal(_context(upload_id), json.dumps(path)), k.version, size, content_type,
                 t, t))
    return Upload(upload_id, user_id, path, size, 0, content_type, t)


def get(txn: Txn, user_id: int, upload_id: str) -> Upload | None:
    """The upload, only for its own user (anyone else: None, as if it did not exist)."""
    row = txn.query_one("SELECT id, user_id, path_s, size, committed, content_type, updated_at FROM file_uploads"
                        " WHERE id = ? AND user_id = ?", (upload_id, user_id))
    if row is None:
        return None
    path = json.loads(key(txn, user_id).open_text(_context(upload_id), row[2]))
    return Upload(row[0], int(row[1]), path, int(row[3]), int(row[4]), row[5], int(row[6]))


def add_part(txn: Txn, blobs: Any, user_id: int, upload_id: str, start: int, blob_key: str, size: int) -> int:
    """Record a stored chunk at ``start`` (which must be the committed offset); the new offset."""
    row = txn.query_one("UPDATE file_uploads SET committed = committed + ?, updated_at = ? WHERE id = ? AND"
                        " user_id = ? AND committed = ? AND committed + ? <= size RETURNING committed",
                        (size, int(txn.now), upload_id, user_id, start, size))
    if row is None:
        raise FilesError(409, "offset_mismatch", "the chunk does not start at the committed offset")
    ref_blob(txn, blobs, blob_key)
    txn.execute("INSERT INTO file_upload_parts (upload_id, start_at, size, blob_key) VALUES (?, ?, ?, ?)",
                (upload_id, start, size, blob_key))
    return int(row[0])


def parts(txn: Txn, upload_id: str) -> list[str]:
    """The chunks' blob keys in order."""
    return [r[0] for r in txn.query("SELECT blob_key FROM file_upload_parts WHERE upload_id = ? ORDER BY start_at",
                                    (upload_id,))]


def drop(txn: Txn, collector: Collector, upload_id: str) -> None:
    """Forget an upload; its parts' references go to ``collector`` (the caller collects)."""
    collector.unref_all(parts(txn, upload_id))
    txn.execute("DELETE FROM file_uploads WHERE id = ?", (upload_id,))


def cancel(txn: Txn, blobs: Any, user_id: int, upload_id: str) -> bool:
    if get(txn, user_id, upload_id) is None:
        return False
    collector = Collector(blobs)
    drop(txn, collector, upload_id)
    collector.collect(txn)
    return True


def expire(txn: Txn, blobs: Any, max_age: int, limit: int = 200) -> int:
    """Abandoned uploads (no chunk for ``max_age`` seconds) go, with their chunks."""
    cutoff = int(txn.now) - max_age
    ids = [r[0] for r in txn.query("SELECT id FROM file_uploads WHERE updated_at < ? ORDER BY updated_at LIMIT ?",
                                   (cutoff, limit))]
    collector = Collector(blobs)
    for upload_id in ids:
        drop(txn, collector, upload_id)
    collector.collect(txn)
    return len(ids)


def pending_bytes(txn: Txn, user_id: int) -> int:
    """Bytes declared by the user's unfinished uploads (reserved against the quota at creation)."""
    return int(txn.scalar("SELECT COALESCE(SUM(size), 0) FROM file_uploads WHERE user_id = ?", (user_id,)) or 0)



def complete(txn: Txn, blobs: Any, upload_id: str, parent_id: int, name: str, blob_key: str, size: int,
             content_type: str, default_limit: int, keep: int) -> Any:
    """Link the assembled blob at ``parent/name`` and forget the upload, in one transaction (a
    second completion of the same upload finds it gone: 404)."""
    from tau.files import store

    keys = parts(txn, upload_id)
    if txn.query_one("DELETE FROM file_uploads WHERE id = ? RETURNING id", (upload_id,)) is None:
        raise FilesError(404, "not_found", "no such upload")
    node, _ = store.put_file(txn, blobs, parent_id, name, blob_key, size, content_type, default_limit, keep=keep)
    collector = Collector(blobs)
    collector.unref_all(keys)
    collector.collect(txn)
    return node
