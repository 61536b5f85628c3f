"""Read-only tree walks: the change log behind sync-collection and subtree listings (ZIP).

Names are sealed at rest, so paths are put together here from the opened names of a subtree's
rows (one recursive query), not concatenated in SQL.
"""

from __future__ import annotations

from tau.atrest.sealed import key
from tau.files.store import COLS, SUBTREE, Node, _nodes
from tau.storage.database import Txn, placeholders


def changes_since(txn: Txn, folder_ids: list[int], seq: int) -> list[tuple[int, str, int]]:
    """(parent_id, name, first change seq after ``seq``) of every member touched in those folders,
    in the order of that first change (truncated sync reports cut the list at a seq boundary)."""
    first: dict[tuple[int, str], tuple[int, int, object, int]] = {}
    for start in range(0, len(folder_ids), 500):
        batch = folder_ids[start:start + 500]
        marks = placeholders(len(batch))
        for parent_id, stored, change_seq, sealed, user_id in txn.query(
                "SELECT parent_id, name, seq, name_s, user_id FROM file_changes WHERE seq > ?"
                f" AND parent_id IN ({marks}) ORDER BY seq", [seq, *batch]):
            ident = (int(parent_id), stored)
            if ident not in first:
                first[ident] = (int(parent_id), int(change_seq), sealed, int(user_id))
    out: list[tuple[int, str, int]] = []
    for (parent_id, stored), (_, change_seq, sealed, user_id) in first.items():
        name = stored if sealed is None else key(txn, user_id).open_text(
            f"file_changes.name|{parent_id}|{stored}", sealed)  # type: ignore[arg-type]
        out.append((parent_id, name, change_seq))
    out.sort(key=lambda c: (c[2], c[0], c[1]))
    return out


def _subtree(txn: Txn, node_id: int, folders_only: bool) -> dict[int, Node]:
    kind = " AND kind = 'folder'" if folders_only else ""
    sub = (SUBTREE if not folders_only else SUBTREE.replace("JOIN sub ON n.parent_id = sub.id",
                                                            "JOIN sub ON n.parent_id = sub.id AND n.kind = 'folder'"))
    rows = txn.query(sub + f"SELECT {COLS} FROM file_nodes WHERE id IN (SELECT id FROM sub){kind}", (node_id,))
    return {n.id: n for n in _nodes(txn, rows)}


def _paths(nodes: dict[int, Node], node_id: int) -> dict[int, list[str]]:
    paths: dict[int, list[str]] = {node_id: []}

    def path(n: Node) -> list[str]:
        chain: list[Node] = []
        while n.id not in paths:
            chain.append(n)
            n = nodes[n.parent_id]  # type: ignore[index]
        base = paths[n.id]
        for m in reversed(chain):
            base = paths[m.id] = [*base, m.name]
        return base

    for n in nodes.values():
        path(n)
    return paths


def folder_paths(txn: Txn, node_id: int) -> dict[int, list[str]]:
    """Every folder at or below ``node_id`` → its segments relative to ``node_id``."""
    return _paths(_subtree(txn, node_id, True), node_id)


def tree_listing(txn: Txn, node_id: int) -> list[tuple[list[str], Node]]:
    """Every node below ``node_id`` with its path relative to it, parents before children."""
    nodes = _subtree(txn, node_id, False)
    paths = _paths(nodes, node_id)
    out = [(paths[i], n) for i, n in nodes.items() if i != node_id]
    out.sort(key=lambda item: item[0])
    return out
