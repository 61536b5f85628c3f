"""Earlier contents of files (``file_versions``): what an overwrite keeps, and their SQL.

An overwrite does not drop the old blob: its reference moves from the node to a version row
(``file_blobs`` counts version rows like node rows, so neither the collector nor the sweeper
deletes a blob a version still names). Only the newest ``keep`` versions of a file stay; older
ones give their reference back. Versions do not count against the quota (as in Nextcloud): they
are bounded by ``keep`` and go with the file when it is purged.

This module does not import :mod:`tau.files.store` (which calls it on every overwrite); restoring
a version, which needs the tree, is :mod:`tau.files.versions`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tau.files.blobrefs import Collector
from tau.storage.database import Txn

DEFAULT_KEEP = 10
_SUBTREE = ("WITH RECURSIVE sub(id) AS (SELECT id FROM file_nodes WHERE id = ? UNION ALL SELECT n.id FROM file_nodes n"
            " JOIN sub ON n.parent_id = sub.id) ")


class Version(NamedTuple):
    id: int
    node_id: int
    blob_key: str
    size: int
    content_type: str
    modified_at: int
    created_at: int


VCOLS = "id, node_id, blob_key, size, content_type, modified_at, created_at"


def keep(txn: Txn, collector: Collector, node: Any, keep_count: int = DEFAULT_KEEP) -> None:
    """``node`` (a file row about to be overwritten) keeps its current content as a version; the
    oldest beyond ``keep_count`` are dropped. With ``keep_count`` 0 the old blob is released."""
    if not node.blob_key:
        return
    if keep_count <= 0:
        collector.unref(node.blob_key)
        return
    txn.execute("INSERT INTO file_versions (node_id, blob_key, size, content_type, modified_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (node.id, node.blob_key, node.size, node.content_type, node.modified_at, int(txn.now)))
    trim(txn, collector, node.id, keep_count)


def trim(txn: Txn, collector: Collector, node_id: int, keep_count: int) -> None:
    rows = txn.query("SELECT id, blob_key FROM file_versions WHERE node_id = ? ORDER BY id DESC", (node_id,))
    for version_id, blob_key in rows[max(keep_count, 0):]:
        txn.execute("DELETE FROM file_versions WHERE id = ?", (version_id,))
        collector.unref(blob_key)


def listing(txn: Txn, node_id: int) -> list[Version]:
    """A file's versions, newest first."""
    rows = txn.query(f"SELECT {VCOLS} FROM file_versions WHERE node_id = ? ORDER BY id DESC", (node_id,))
    return [Version._make(r) for r in rows]


def get(txn: Txn, node_id: int, version_id: int) -> Version | None:
    row = txn.query_one(f"SELECT {VCOLS} FROM file_versions WHERE node_id = ? AND id = ?", (node_id, version_id))
    return None if row is None else Version._make(row)


def make_current(txn: Txn, node_id: int, version: Version, etag: str, t: int) -> None:
    """The file's row points at ``version``'s content (its blob reference moves with it)."""
    txn.execute("UPDATE file_nodes SET size = ?, etag = ?, blob_key = ?, content_type = ?, modified_at = ?"
                " WHERE id = ?", (version.size, etag, version.blob_key, version.content_type, t, node_id))


def delete(txn: Txn, version_id: int) -> None:
    """Drop a version row (the caller moves its blob reference elsewhere or releases it)."""
    txn.execute("DELETE FROM file_versions WHERE id = ?", (version_id,))


def subtree_keys(txn: Txn, node_id: int) -> list[str]:
    """Blob keys of every version below (and of) ``node_id``: released when the subtree goes."""
    return [r[0] for r in txn.query(_SUBTREE + "SELECT v.blob_key FROM file_versions v"
                                    " WHERE v.node_id IN (SELECT id FROM sub)", (node_id,))]
