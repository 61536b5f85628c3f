"""Read-only tree walks: the change log behind sync-collection and subtree listings (ZIP)."""

from __future__ import annotations

from tau.files.store import COLS, PATHS, Node, _node
from tau.storage.database import Txn, placeholders


def changes_since(txn: Txn, folder_ids: list[int], seq: int) -> list[tuple[int, str, int]]:
    """(parent_id, name, first change seq after ``seq``) of every member touched in those folders,
    in the order of that first change (truncated sync reports cut the list at a seq boundary)."""
    out: list[tuple[int, str, int]] = []
    for start in range(0, len(folder_ids), 500):
        batch = folder_ids[start:start + 500]
        marks = placeholders(len(batch))
        for parent_id, name, first in txn.query(
                f"SELECT parent_id, name, MIN(seq) FROM file_changes WHERE seq > ? AND parent_id IN ({marks})"
                " GROUP BY parent_id, name", [seq, *batch]):
            out.append((int(parent_id), name, int(first)))
    out.sort(key=lambda c: (c[2], c[0], c[1]))
    return out


def folder_paths(txn: Txn, node_id: int) -> dict[int, list[str]]:
    """Every folder at or below ``node_id`` → its segments relative to ``node_id``."""
    rows = txn.query(PATHS + "SELECT n.id, sub.path || '/' ||"
                     " n.name FROM file_nodes n JOIN sub ON n.parent_id = sub.id WHERE n.kind = 'folder')"
                     " SELECT id, path FROM sub", (node_id,))
    return {int(i): [s for s in p.split("/") if s] for i, p in rows}


def tree_listing(txn: Txn, node_id: int) -> list[tuple[list[str], Node]]:
    """Every node below ``node_id`` with its path relative to it, parents before children."""
    cols = COLS.replace("id,", "f.id,", 1)
    rows = txn.query(PATHS + "SELECT n.id, sub.path || '/' ||"
                     f" n.name FROM file_nodes n JOIN sub ON n.parent_id = sub.id) SELECT {cols}"
                     ", sub.path FROM sub JOIN file_nodes f ON f.id = sub.id WHERE sub.id <> ?", (node_id, node_id))
    out = []
    for row in rows:
        node = _node(row[:11])
        if node is not None:
            out.append(([s for s in row[11].split("/") if s], node))
    out.sort(key=lambda item: item[0])
    return out
