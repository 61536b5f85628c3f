"""The file rows of one user, for a privacy export (:mod:`tau.files.privacy`)."""

from __future__ import annotations

from typing import Any

from tau.files import trashstore
from tau.files.store import COLS, _nodes
from tau.storage.database import Txn

TRASH_FOLDER = "Trash (deleted files)"


def nodes(txn: Txn, user_id: int) -> list[tuple[Any, ...]]:
    """(id, parent_id, name, kind, blob_key, modified_at) of every node the user owns (names opened).

    What is in the trash comes as a folder ``TRASH_FOLDER`` of the root, each item under its original
    name (in the tree a trashed node is named by its id)."""
    rows = txn.query(f"SELECT {COLS} FROM file_nodes WHERE user_id = ?", (user_id,))
    found = _nodes(txn, rows)
    trash = trashstore.trash_id(txn, user_id)
    names = {t.node_id: t.name for t in trashstore.listing(txn, user_id)} if trash is not None else {}
    root = next((n.id for n in found if n.parent_id is None and n.id != trash), None)
    out = []
    for n in found:
        parent, name = n.parent_id, names.get(n.id, n.name)
        if n.id == trash:
            parent, name = root, TRASH_FOLDER
        out.append((n.id, parent, name, n.kind, n.blob_key, n.modified_at))
    return out
