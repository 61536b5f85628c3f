"""The file rows of one user, for a privacy export (:mod:`tau.files.privacy`)."""

from __future__ import annotations

from typing import Any

from tau.storage.database import Txn


def nodes(txn: Txn, user_id: int) -> list[tuple[Any, ...]]:
    """(id, parent_id, name, kind, blob_key, modified_at) of every node the user owns."""
    return txn.query("SELECT id, parent_id, name, kind, blob_key, modified_at FROM file_nodes WHERE user_id = ?",
                     (user_id,))
