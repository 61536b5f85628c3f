"""The trash (``file_trash``): deleting moves a file or folder here; restore, purge and expiry.

Each user's trash is a second parentless folder (``file_usage.trash_id``) that no path reaches, so
WebDAV PROPFIND, REST listings and sync never show what is in it. A trashed node keeps its row
under the trash folder, named by its id, so its bytes still count against the quota until purged
(as in Nextcloud). ``file_trash`` keeps the original path, sealed at rest under the owner's key
like file names. Shares of a trashed subtree are revoked (a deleted file's link stops working).
Restoring goes back to the original folder when it still exists, else to the root; a name taken
meanwhile gets `` (restored)`` before its extension.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from tau.atrest.sealed import key
from tau.files import store
from tau.files.blobrefs import Collector
from tau.files.namestore import _reseal
from tau.files.store import FilesError, Node
from tau.storage.database import Txn, placeholders

_UP = ("WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM file_nodes WHERE id = ? UNION ALL"
       " SELECT n.id, n.parent_id FROM file_nodes n JOIN up ON n.id = up.parent_id) ")
_SIZES = ("WITH RECURSIVE sub(top, id) AS (SELECT node_id, node_id FROM file_trash WHERE user_id = ? UNION ALL"
          " SELECT sub.top, n.id FROM file_nodes n JOIN sub ON n.parent_id = sub.id) ")


class TrashItem(NamedTuple):
    id: int
    node_id: int
    name: str
    path: list[str]  # where it was, from the root (its own name last)
    kind: str
    size: int  # a folder: everything in it
    deleted_at: int


def _context(node_id: int) -> str:
    return f"file_trash.path|{node_id}"


def trash_id(txn: Txn, user_id: int) -> int | None:
    value = txn.scalar("SELECT trash_id FROM file_usage WHERE user_id = ?", (user_id,))
    return None if value is None else int(value)


def _ensure_trash(txn: Txn, user_id: int) -> int:
    """The user's trash folder (made on first use; the caller holds the user's row lock)."""
    found = trash_id(txn, user_id)
    if found is not None:
        return found
    t = int(txn.now)
    new_id = int(txn.scalar("INSERT INTO file_nodes (user_id, parent_id, name, kind, size, etag, created_at,"
                            " modified_at, kv) VALUES (?, NULL, '', ?, 0, ?, ?, ?, ?) RETURNING id",
                            (user_id, store.FOLDER, store.new_etag(), t, t, key(txn, user_id).version)))
    txn.execute("UPDATE file_usage SET trash_id = ? WHERE user_id = ?", (new_id, user_id))
    return new_id


def in_trash(txn: Txn, node: Node) -> bool:
    """Whether ``node`` is (below) a trashed node: its topmost ancestor is its owner's trash."""
    tid = trash_id(txn, node.user_id)
    if tid is None:
        return False
    top = txn.scalar(_UP + "SELECT id FROM up WHERE parent_id IS NULL", (node.id,))
    return top is not None and int(top) == tid


def trash_node(txn: Txn, node_id: int) -> int:
    """Move a node (and what is in it) to its owner's trash; the trash item's id."""
    node = store.get_node(txn, node_id)
    seq = store.bump(txn, node.user_id) if node is not None else 0
    node = store.get_node(txn, node_id)  # again, under the owner's row lock (a concurrent delete)
    if node is None or in_trash(txn, node):
        raise FilesError(404, "not_found", "no such file or folder")
    if node.parent_id is None:
        raise FilesError(403, "root", "the root folder cannot be deleted")
    tid = _ensure_trash(txn, node.user_id)
    path = store.path_of(txn, node)
    ids = [r[0] for r in txn.query(store.SUBTREE + "SELECT id FROM sub", (node.id,))]
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        txn.execute(f"DELETE FROM file_shares WHERE node_id IN ({placeholders(len(batch))})", batch)
    _reseal(txn, node.user_id, node.id, tid, str(node.id))
    k = key(txn, node.user_id)
    item_id = int(txn.scalar("INSERT INTO file_trash (user_id, node_id, path_s, kv, deleted_at) VALUES (?, ?, ?, ?, ?)"
                             " RETURNING id", (node.user_id, node.id, k.seal(_context(node.id), json.dumps(path)),
                                               k.version, int(txn.now))))
    store.log_change(txn, node.user_id, seq, node.parent_id, node.name, deleted=True)
    store._touch_folder(txn, node.parent_id, int(txn.now))
    return item_id


def _item(txn: Txn, row: Sequence[Any], sizes: dict[int, int]) -> TrashItem:
    item_id, user_id, node_id, sealed, deleted_at, kind, size = row
    path = json.loads(key(txn, int(user_id)).open_text(_context(node_id), sealed))
    total = sizes.get(int(node_id), 0) if kind == store.FOLDER else int(size)
    return TrashItem(int(item_id), int(node_id), path[-1] if path else "", path, kind, total, int(deleted_at))


_ITEM = ("SELECT t.id, t.user_id, t.node_id, t.path_s, t.deleted_at, n.kind, n.size FROM file_trash t"
         " JOIN file_nodes n ON n.id = t.node_id")


def listing(txn: Txn, user_id: int) -> list[TrashItem]:
    """The user's trash, newest first (folder sizes summed in one query)."""
    sizes = {int(top): int(total or 0) for top, total in txn.query(
        _SIZES + "SELECT sub.top, SUM(n.size) FROM sub JOIN file_nodes n ON n.id = sub.id"
        " WHERE n.kind = 'file' GROUP BY sub.top", (user_id,))}
    rows = txn.query(_ITEM + " WHERE t.user_id = ? ORDER BY t.deleted_at DESC, t.id DESC", (user_id,))
    return [_item(txn, r, sizes) for r in rows]


def get_item(txn: Txn, user_id: int, item_id: int) -> TrashItem | None:
    row = txn.query_one(_ITEM + " WHERE t.id = ? AND t.user_id = ?", (item_id, user_id))
    return None if row is None else _item(txn, row, {})


def _free_name(txn: Txn, parent: Node, name: str) -> str:
    if store.child(txn, parent.id, name, parent.user_id) is None:
        return name
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension (or a dotfile): the suffix goes at the end
        stem, dot, ext = name, "", ""
    for n in range(1, 1000):
        label = " (restored)" if n == 1 else f" (restored {n})"
        candidate = f"{stem}{label}{dot}{ext}"
        if store.child(txn, parent.id, candidate, parent.user_id) is None:
            return candidate
    raise FilesError(409, "exists", "no free name to restore to")


def restore(txn: Txn, user_id: int, item_id: int) -> tuple[Node, list[str]]:
    """Put a trashed node back (original folder, else the root; a taken name gets " (restored)");
    (node, its path now)."""
    seq = store.bump(txn, user_id)  # first: the item is read under the row lock
    item = get_item(txn, user_id, item_id)
    if item is None:
        raise FilesError(404, "not_found", "no such item in the trash")
    root = store.ensure_root(txn, user_id)
    folder, place = root, []
    if len(item.path) > 1:
        _, found = store.walk(txn, root, item.path[:-1])
        if found is not None and found.is_folder:
            folder, place = found, item.path[:-1]
    name = _free_name(txn, folder, item.name)
    _reseal(txn, user_id, item.node_id, folder.id, name)
    txn.execute("DELETE FROM file_trash WHERE id = ?", (item_id,))
    store.log_change(txn, user_id, seq, folder.id, name)
    store._touch_folder(txn, folder.id, int(txn.now))
    node = store.get_node(txn, item.node_id)
    assert node is not None
    return node, place + [name]


def purge(txn: Txn, blobs: Any, user_id: int, item_id: int | None = None) -> int:
    """Delete one trash item (or all of the user's) for good: their bytes leave the quota."""
    if item_id is None:
        ids = [int(r[0]) for r in txn.query("SELECT node_id FROM file_trash WHERE user_id = ?", (user_id,))]
    else:
        ids = [int(r[0]) for r in txn.query("SELECT node_id FROM file_trash WHERE user_id = ? AND id = ?",
                                            (user_id, item_id))]
        if not ids:
            raise FilesError(404, "not_found", "no such item in the trash")
    return _destroy(txn, blobs, user_id, ids)


def _destroy(txn: Txn, blobs: Any, user_id: int, node_ids: list[int]) -> int:
    if not node_ids:
        return 0
    seq = store.bump(txn, user_id)
    # under the row lock: only what is still in the trash (a concurrent restore took it back)
    still = {int(r[0]) for r in txn.query("SELECT node_id FROM file_trash WHERE user_id = ?", (user_id,))}
    collector = Collector(blobs)
    t = int(txn.now)
    for node_id in (n for n in node_ids if n in still):
        node = store.get_node(txn, node_id)
        if node is not None:
            store._remove(txn, node, seq, collector, t)
    collector.collect(txn)
    return len([n for n in node_ids if n in still])


def expire(txn: Txn, blobs: Any, max_age: int, limit: int = 200) -> int:
    """Purge trash items deleted over ``max_age`` seconds ago (the retention job), ``limit`` a run."""
    cutoff = int(txn.now) - max_age
    rows = txn.query("SELECT user_id, node_id FROM file_trash WHERE deleted_at < ? ORDER BY deleted_at LIMIT ?",
                     (cutoff, limit))
    by_user: dict[int, list[int]] = {}
    for user_id, node_id in rows:
        by_user.setdefault(int(user_id), []).append(int(node_id))
    return sum(_destroy(txn, blobs, user_id, ids) for user_id, ids in by_user.items())
