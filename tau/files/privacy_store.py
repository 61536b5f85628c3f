"""The file rows of one user, for a privacy export (:mod:`tau.files.privacy`)."""

from __future__ import annotations

from typing import Any

from tau.files.store import COLS, _nodes
from tau.storage.database import Txn


def nodes(txn: Txn, user_id: int) -> list[tuple[Any, ...]]:
    """(id, parent_id, name, kind, blob_key, modified_at) of every node the user owns (names opened)."""
    rows = txn.query(f"SELECT {COLS} FROM file_nodes WHERE user_id = ?", (user_id,))
    return [(n.id, n.parent_id, n.name, n.kind, n.blob_key, n.modified_at) for n in _nodes(txn, rows)]
