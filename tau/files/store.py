"""The file tree store: transaction functions over ``file_nodes`` and friends (no protocol here).

Every write bumps the owner's ``file_usage.sync_seq`` first — the sequence number of the change
log behind sync-collection, and the row that serialises one user's writes so quota checks are
exact. Subtrees are walked with one recursive CTE (the same SQL on SQLite and PostgreSQL).

Names are sealed at rest (issue 16): ``name`` holds the keyed lookup hash of the name under the
owner's index key (so ``UNIQUE (parent_id, name)`` and path lookups still work without plaintext)
and ``name_s`` the sealed name, bound to the folder and hash; listings sort after opening them. A
row from before (``kv = 0``) keeps its plaintext name until the converter seals it, and lookups
try both forms meanwhile. A node's owner is always its folder's owner, whose keys seal its name.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

from tau.atrest.sealed import key
from tau.files import propstore, versionstore
from tau.files.blobrefs import Collector, ref_blob
from tau.files.namestore import NAME_PURPOSE, _context, _owner, _reseal, sealed_name
from tau.storage.database import Txn, placeholders

COLS = "id, user_id, parent_id, name, kind, size, etag, blob_key, content_type, created_at, modified_at, name_s"
FOLDER, FILE = "folder", "file"
SUBTREE = ("WITH RECURSIVE sub(id) AS (SELECT id FROM file_nodes WHERE id = ? UNION ALL SELECT n.id FROM file_nodes n"
           " JOIN sub ON n.parent_id = sub.id) ")


class FilesError(Exception):
    """A refused tree operation; ``status`` maps onto HTTP and DAV answers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class QuotaExceeded(FilesError):
    def __init__(self, used: int, limit: int, needed: int) -> None:
        super().__init__(507, "quota_exceeded", f"quota of {limit} bytes exceeded")
        self.used, self.limit, self.needed = used, limit, needed


class Node(NamedTuple):
    """One row of ``file_nodes`` (a NamedTuple: a 1,000-member listing builds a thousand of them)."""

    id: int
    user_id: int
    parent_id: int | None
    name: str
    kind: str
    size: int
    etag: str
    blob_key: str | None
    content_type: str
    created_at: int
    modified_at: int

    @property
    def is_folder(self) -> bool:
        return self.kind == FOLDER


def _node(txn: Txn, row: Sequence[Any] | None) -> Node | None:
    """A row of ``COLS`` (its name opened)."""
    if row is None:
        return None
    sealed = row[11]
    if sealed is None:  # the root, or a row still in plaintext
        return Node._make(row[:11])
    name = key(txn, int(row[1])).open_text(_context(row[2], row[3]), sealed)
    return Node(row[0], row[1], row[2], name, *row[4:11])


def _nodes(txn: Txn, rows: Sequence[Sequence[Any]]) -> list[Node]:
    return [n for n in (_node(txn, r) for r in rows) if n is not None]


def new_etag() -> str:
    return '"' + secrets.token_hex(10) + '"'


def file_etag(blob_key: str, modified: int) -> str:
    return f'"{blob_key[:24]}-{modified:x}"'


# -- reading -----------------------------------------------------------------------------------
def get_node(txn: Txn, node_id: int) -> Node | None:
    return _node(txn, txn.query_one(f"SELECT {COLS} FROM file_nodes WHERE id = ?", (node_id,)))


def child(txn: Txn, parent_id: int, name: str, owner_id: int | None = None) -> Node | None:
    """The member ``name`` of a folder (``owner_id``: the folder's owner, when the caller knows)."""
    owner = _owner(txn, parent_id) if owner_id is None else owner_id
    if not owner:
        return None
    lookup = key(txn, owner).lookup(NAME_PURPOSE, name)
    rows = txn.query(f"SELECT {COLS} FROM file_nodes WHERE parent_id = ? AND name IN (?, ?)",
                     (parent_id, lookup, name))
    if len(rows) > 1:  # a sealed row and a plaintext one of the same name (mid-conversion): the sealed
        rows = [r for r in rows if r[11] is not None]
    return _node(txn, rows[0]) if rows else None


def children(txn: Txn, parent_id: int, after: str | None = None, limit: int | None = None) -> list[Node]:
    """A folder's members in name order (sorted here: the database holds only lookup hashes)."""
    nodes = sorted(_nodes(txn, txn.query(f"SELECT {COLS} FROM file_nodes WHERE parent_id = ?", (parent_id,))),
                   key=lambda n: n.name)
    if after is not None:
        nodes = [n for n in nodes if n.name > after]
    return nodes if limit is None else nodes[:limit]


def usage(txn: Txn, user_id: int) -> tuple[int, int]:
    """(bytes used, sync sequence) of a user's tree."""
    row = txn.query_one("SELECT bytes, sync_seq FROM file_usage WHERE user_id = ?", (user_id,))
    return (int(row[0]), int(row[1])) if row else (0, 0)


def quota_limit(txn: Txn, user_id: int, default: int) -> int:
    """The user's quota in bytes (0: unlimited): ``users.quota_bytes`` or the configured default."""
    value = txn.scalar("SELECT quota_bytes FROM users WHERE id = ?", (user_id,))
    return int(value) if value is not None else default


def ensure_root(txn: Txn, user_id: int) -> Node:
    root_id = txn.scalar("SELECT root_id FROM file_usage WHERE user_id = ?", (user_id,))
    if root_id is not None:
        node = get_node(txn, int(root_id))
        if node is not None:
            return node
    txn.execute("INSERT INTO file_usage (user_id, bytes, sync_seq) VALUES (?, 0, 0)"
                " ON CONFLICT (user_id) DO NOTHING", (user_id,))
    root_id = txn.scalar("SELECT root_id FROM file_usage WHERE user_id = ? FOR UPDATE"
                         if txn.engine.name == "postgres" else
                         "SELECT root_id FROM file_usage WHERE user_id = ?", (user_id,))
    if root_id is not None:
        node = get_node(txn, int(root_id))
        assert node is not None
        return node
    t = int(txn.now)
    new_id = txn.scalar("INSERT INTO file_nodes (user_id, parent_id, name, kind, size, etag, created_at,"
                        " modified_at, kv) VALUES (?, NULL, '', ?, 0, ?, ?, ?, ?) RETURNING id",
                        (user_id, FOLDER, new_etag(), t, t, key(txn, user_id).version))
    txn.execute("UPDATE file_usage SET root_id = ? WHERE user_id = ?", (new_id, user_id))
    node = get_node(txn, int(new_id))
    assert node is not None
    return node


def walk(txn: Txn, start: Node, segments: list[str]) -> tuple[Node | None, Node | None]:
    """(parent, node) for ``segments`` below ``start``; node None if the last one is missing,
    both None if an intermediate folder is missing or is a file."""
    current, parent = start, None
    for i, seg in enumerate(segments):
        if not current.is_folder:
            return None, None
        found = child(txn, current.id, seg, current.user_id)
        if found is None:
            return (current, None) if i == len(segments) - 1 else (None, None)
        parent, current = current, found
    return parent, current


def path_of(txn: Txn, node: Node) -> list[str]:
    """Segments from the owner's root down to ``node``."""
    out: list[str] = []
    while node.parent_id is not None:
        out.append(node.name)
        parent = get_node(txn, node.parent_id)
        if parent is None:
            break
        node = parent
    return out[::-1]


def props_of(txn: Txn, node_ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in node_ids}
    for start in range(0, len(node_ids), 500):
        batch = node_ids[start:start + 500]
        marks = placeholders(len(batch))
        propstore.opened(txn, txn.query(
            "SELECT p.node_id, n.user_id, p.name, p.value, p.value_s FROM file_props p JOIN file_nodes n"
            f" ON n.id = p.node_id WHERE p.node_id IN ({marks})", batch), out)
    return out


def child_props(txn: Txn, parent_id: int) -> dict[int, dict[str, str]]:
    return propstore.opened(txn, txn.query(
        "SELECT p.node_id, n.user_id, p.name, p.value, p.value_s FROM file_props p JOIN file_nodes n"
        " ON n.id = p.node_id WHERE n.parent_id = ?", (parent_id,)), {})


# -- writing -----------------------------------------------------------------------------------
KEEP_CHANGES = 20_000  # sequence numbers of change log kept per user
PRUNE_EVERY = 1_000


def bump(txn: Txn, user_id: int) -> int:
    """Next change sequence of ``user_id`` (and the row lock for this user's writes).

    Every ``PRUNE_EVERY`` changes the log is cut to the last ``KEEP_CHANGES`` sequence numbers.
    """
    return _bump(txn, user_id)[0]


def _bump(txn: Txn, user_id: int) -> tuple[int, int]:
    """``bump``, also returning the bytes used (read under the same row lock: exact quota checks)."""
    sql = "UPDATE file_usage SET sync_seq = sync_seq + 1 WHERE user_id = ? RETURNING sync_seq, bytes"
    row = txn.query_one(sql, (user_id,))
    if row is None:  # first write of this user: create the root and its usage row
        ensure_root(txn, user_id)
        row = txn.query_one(sql, (user_id,))
    seq, used = int(row[0]), int(row[1])  # type: ignore[index]
    if seq % PRUNE_EVERY == 0 and seq > KEEP_CHANGES:
        cut = seq - KEEP_CHANGES
        txn.execute("DELETE FROM file_changes WHERE user_id = ? AND seq <= ?", (user_id, cut))
        txn.execute("UPDATE file_usage SET pruned_seq = ? WHERE user_id = ?", (cut, user_id))
    return seq, used


def pruned_seq(txn: Txn, user_id: int) -> int:
    return int(txn.scalar("SELECT pruned_seq FROM file_usage WHERE user_id = ?", (user_id,)) or 0)


def log_change(txn: Txn, user_id: int, seq: int, parent_id: int, name: str, deleted: bool = False) -> None:
    lookup, sealed, kv = sealed_name(txn, user_id, parent_id, name, "file_changes")
    txn.execute("INSERT INTO file_changes (user_id, seq, parent_id, name, deleted, name_s, kv)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (user_id, seq, parent_id, lookup, int(deleted), sealed, kv))


def _touch_folder(txn: Txn, folder_id: int, t: int) -> None:
    txn.execute("UPDATE file_nodes SET modified_at = ?, etag = ? WHERE id = ?", (t, new_etag(), folder_id))


def _check_quota(txn: Txn, user_id: int, delta: int, default_limit: int) -> None:
    if delta <= 0:
        return
    limit = quota_limit(txn, user_id, default_limit)
    used, _ = usage(txn, user_id)
    if limit and used + delta > limit:
        raise QuotaExceeded(used, limit, delta)


def _add_usage(txn: Txn, user_id: int, delta: int) -> None:
    if delta:
        txn.execute("UPDATE file_usage SET bytes = bytes + ? WHERE user_id = ?", (delta, user_id))


def make_folder(txn: Txn, parent: Node, name: str) -> Node:
    seq = bump(txn, parent.user_id)
    if child(txn, parent.id, name, parent.user_id) is not None:
        raise FilesError(405, "exists", "a file or folder with that name exists")
    t = int(txn.now)
    lookup, sealed, kv = sealed_name(txn, parent.user_id, parent.id, name)
    new_id = txn.scalar("INSERT INTO file_nodes (user_id, parent_id, name, kind, size, etag, created_at,"
                        " modified_at, name_s, kv) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?) RETURNING id",
                        (parent.user_id, parent.id, lookup, FOLDER, new_etag(), t, t, sealed, kv))
    log_change(txn, parent.user_id, seq, parent.id, name)
    _touch_folder(txn, parent.id, t)
    node = get_node(txn, int(new_id))
    assert node is not None
    return node


def put_file(txn: Txn, blobs: Any, parent_id: int, name: str, blob_key: str, size: int, content_type: str,
             default_limit: int, if_etag: str | None = None,
             keep: int = versionstore.DEFAULT_KEEP) -> tuple[Node, bool]:
    """Create or replace a file (the old content kept as a version, up to ``keep``); (node, created).
    Raises QuotaExceeded first. The hot path of every upload: one statement a step, no read-back."""
    parent = get_node(txn, parent_id)
    if parent is None or not parent.is_folder:
        raise FilesError(409, "no_parent", "the parent folder does not exist")
    seq, used = _bump(txn, parent.user_id)
    existing = child(txn, parent.id, name, parent.user_id)
    if existing is not None and existing.is_folder:
        raise FilesError(405, "is_folder", "a folder with that name exists")
    if if_etag is not None and (existing is None or existing.etag != if_etag):
        raise FilesError(412, "changed", "the file changed meanwhile")
    delta = size - (existing.size if existing else 0)
    if delta > 0:
        limit = quota_limit(txn, parent.user_id, default_limit)
        if limit and used + delta > limit:
            raise QuotaExceeded(used, limit, delta)
    ref_blob(txn, blobs, blob_key)
    t = int(txn.now)
    etag = file_etag(blob_key, t)
    collector = Collector(blobs)
    if existing is not None:
        txn.execute("UPDATE file_nodes SET size = ?, etag = ?, blob_key = ?, content_type = ?, modified_at = ?"
                    " WHERE id = ?", (size, etag, blob_key, content_type, t, existing.id))
        versionstore.keep(txn, collector, existing, keep)
        node = existing._replace(size=size, etag=etag, blob_key=blob_key, content_type=content_type, modified_at=t)
    else:
        lookup, sealed, kv = sealed_name(txn, parent.user_id, parent.id, name)
        node_id = int(txn.scalar(
            "INSERT INTO file_nodes (user_id, parent_id, name, kind, size, etag, blob_key, content_type,"
            " created_at, modified_at, name_s, kv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (parent.user_id, parent.id, lookup, FILE, size, etag, blob_key, content_type, t, t, sealed, kv)))
        node = Node(node_id, parent.user_id, parent.id, name, FILE, size, etag, blob_key, content_type, t, t)
        _touch_folder(txn, parent.id, t)
    _add_usage(txn, parent.user_id, delta)
    log_change(txn, parent.user_id, seq, parent.id, name)
    collector.collect(txn)
    return node, existing is None


def _subtree(txn: Txn, node_id: int) -> list[Node]:
    rows = txn.query(SUBTREE + f"SELECT {COLS} FROM file_nodes WHERE id IN (SELECT id FROM sub)", (node_id,))
    return _nodes(txn, rows)


def _remove(txn: Txn, node: Node, seq: int, collector: Collector, t: int) -> None:
    tree = _subtree(txn, node.id)
    freed: dict[int, int] = {}
    for n in tree:
        if not n.is_folder:
            collector.unref(n.blob_key)
            freed[n.user_id] = freed.get(n.user_id, 0) + n.size
    collector.unref_all(versionstore.subtree_keys(txn, node.id))
    txn.execute("DELETE FROM file_nodes WHERE id = ?", (node.id,))
    for user_id, size in freed.items():
        _add_usage(txn, user_id, -size)
    if node.parent_id is not None:
        log_change(txn, node.user_id, seq, node.parent_id, node.name, deleted=True)
        _touch_folder(txn, node.parent_id, t)


def delete_node(txn: Txn, blobs: Any, node_id: int) -> None:
    node = get_node(txn, node_id)
    if node is None:
        raise FilesError(404, "not_found", "no such file or folder")
    if node.parent_id is None:
        raise FilesError(403, "root", "the root folder cannot be deleted")
    seq = bump(txn, node.user_id)
    collector = Collector(blobs)
    _remove(txn, node, seq, collector, int(txn.now))
    collector.collect(txn)


def _inside(txn: Txn, node_id: int, ancestor_id: int) -> bool:
    row = txn.query_one(SUBTREE + "SELECT 1 FROM sub WHERE id = ?", (ancestor_id, node_id))
    return row is not None


def transfer(txn: Txn, blobs: Any, source_id: int, parent_id: int, name: str, move: bool, deep: bool,
             replace_id: int | None, default_limit: int) -> tuple[Node, bool]:
    """COPY or MOVE a node (and, when ``deep``, its subtree) to ``parent/name``; (node, replaced)."""
    src, parent = get_node(txn, source_id), get_node(txn, parent_id)
    if src is None:
        raise FilesError(404, "not_found", "the source no longer exists")
    if parent is None or not parent.is_folder:
        raise FilesError(409, "no_parent", "the destination folder does not exist")
    if src.is_folder and _inside(txn, parent.id, src.id):
        raise FilesError(403, "into_itself", "cannot copy or move a folder into itself")
    seq = bump(txn, parent.user_id)
    src_seq = bump(txn, src.user_id) if src.user_id != parent.user_id else seq
    collector = Collector(blobs)
    t = int(txn.now)
    replaced = False
    existing = child(txn, parent.id, name, parent.user_id)
    if existing is not None and existing.is_folder and _inside(txn, src.id, existing.id):
        raise FilesError(403, "into_itself", "the destination contains the source")
    if existing is not None and replace_id is not None and existing.id == replace_id:
        _remove(txn, existing, seq, collector, t)
        replaced = True
    elif existing is not None:
        raise FilesError(412, "exists", "the destination exists")
    tree = _subtree(txn, src.id) if (deep or move) else [src]
    if move:
        if src.user_id != parent.user_id:
            total = sum(n.size for n in tree if not n.is_folder)
            _check_quota(txn, parent.user_id, total, default_limit)
            ids = [n.id for n in tree]
            for start in range(0, len(ids), 500):
                batch = ids[start:start + 500]
                txn.execute(f"UPDATE file_nodes SET user_id = ? WHERE id IN ({placeholders(len(batch))})",
                            [parent.user_id, *batch])
            _add_usage(txn, src.user_id, -total)
            _add_usage(txn, parent.user_id, total)
            for n in tree:  # names below are now the new owner's: sealed and hashed under their keys
                txn.memo.pop(("file-owner", n.id), None)
                if n.id != src.id and n.parent_id is not None:
                    _reseal(txn, parent.user_id, n.id, n.parent_id, n.name)
        _reseal(txn, parent.user_id, src.id, parent.id, name)
        assert src.parent_id is not None
        log_change(txn, src.user_id, src_seq, src.parent_id, src.name, deleted=True)
        _touch_folder(txn, src.parent_id, t)
        new_id = src.id
    else:
        total = sum(n.size for n in tree if not n.is_folder)
        _check_quota(txn, parent.user_id, total, default_limit)
        new_id = _copy_tree(txn, blobs, tree, src, parent, name, t)
        _add_usage(txn, parent.user_id, total)
    log_change(txn, parent.user_id, seq, parent.id, name)
    _touch_folder(txn, parent.id, t)
    collector.collect(txn)
    node = get_node(txn, new_id)
    assert node is not None
    return node, replaced


def _copy_tree(txn: Txn, blobs: Any, tree: list[Node], src: Node, parent: Node, name: str, t: int) -> int:
    by_parent: dict[int | None, list[Node]] = {}
    for n in tree:
        by_parent.setdefault(n.parent_id, []).append(n)
    props = props_of(txn, [n.id for n in tree])
    refs: dict[str, int] = {}
    mapping: dict[int, int] = {}
    queue = [(src, parent.id, name)]
    while queue:
        n, new_parent, new_name = queue.pop()
        etag = file_etag(n.blob_key, t) if n.blob_key else new_etag()
        lookup, sealed, kv = sealed_name(txn, parent.user_id, new_parent, new_name)
        new_id = int(txn.scalar(
            "INSERT INTO file_nodes (user_id, parent_id, name, kind, size, etag, blob_key, content_type,"
            " created_at, modified_at, name_s, kv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (parent.user_id, new_parent, lookup, n.kind, n.size, etag, n.blob_key, n.content_type, t,
             n.modified_at, sealed, kv)))
        mapping[n.id] = new_id
        if n.blob_key:
            refs[n.blob_key] = refs.get(n.blob_key, 0) + 1
        if props.get(n.id):
            propstore.insert(txn, parent.user_id, new_id, props[n.id])
        if n.id != src.id or len(tree) > 1:
            for kid in by_parent.get(n.id, []):
                queue.append((kid, new_id, kid.name))
    for blob_key, count in refs.items():
        ref_blob(txn, blobs, blob_key, count)
    return mapping[src.id]


def set_props(txn: Txn, node_id: int, to_set: dict[str, str], remove: list[str]) -> None:
    node = get_node(txn, node_id)
    if node is None:
        raise FilesError(404, "not_found", "no such file or folder")
    bump(txn, node.user_id)
    for name in remove:
        txn.execute("DELETE FROM file_props WHERE node_id = ? AND name = ?", (node_id, name))
    propstore.insert(txn, node.user_id, node_id, to_set, upsert=True)

