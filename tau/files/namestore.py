"""Sealed file and folder names (issue 16): lookup hashes, seals and their conversion.

``file_nodes.name`` (and ``file_changes.name``) hold the keyed lookup hash of a name under the
folder owner's index key; ``name_s`` the name sealed under their data key, bound to the folder
and the hash. Rows from before (``kv = 0``) are sealed by the converter, and re-sealed after a
rotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.atrest.sealed import SealedTable, key
from tau.storage.database import Txn

NAME_PURPOSE = "file.name"


def _context(parent_id: int, lookup: str) -> str:
    return f"file_nodes.name|{parent_id}|{lookup}"


def sealed_name(txn: Txn, user_id: int, parent_id: int, name: str, table: str = "file_nodes"
                ) -> tuple[str, bytes, int]:
    """(lookup hash, sealed name, key version) of ``name`` in folder ``parent_id`` of ``user_id``."""
    k = key(txn, user_id)
    lookup = k.lookup(NAME_PURPOSE, name)
    return lookup, k.seal(f"{table}.name|{parent_id}|{lookup}", name), k.version


def _owner(txn: Txn, node_id: int) -> int:
    memo = txn.memo.get(("file-owner", node_id))
    if memo is None:
        memo = txn.memo[("file-owner", node_id)] = int(txn.scalar("SELECT user_id FROM file_nodes WHERE id = ?",
                                                                  (node_id,)) or 0)
    return int(memo)


def _reseal(txn: Txn, user_id: int, node_id: int, parent_id: int, name: str) -> None:
    """Node ``node_id`` now named ``name`` in ``parent_id`` of ``user_id``: its lookup and seal follow."""
    lookup, sealed, kv = sealed_name(txn, user_id, parent_id, name)
    txn.execute("UPDATE file_nodes SET parent_id = ?, name = ?, name_s = ?, kv = ? WHERE id = ?",
                (parent_id, lookup, sealed, kv, node_id))


# -- encryption at rest of rows written before it (or under a retired key) -----------------------
def _convert_node(txn: Txn, k: Any, row: Sequence[Any]) -> None:
    owner, node_id, parent_id, stored, sealed = row
    if parent_id is None:  # a root: no name
        txn.execute("UPDATE file_nodes SET kv = ? WHERE id = ?", (k.version, node_id))
        return
    name = stored if sealed is None else k.open_text(_context(parent_id, stored), sealed)
    _reseal(txn, int(owner), int(node_id), int(parent_id), name)


def _convert_change(txn: Txn, k: Any, row: Sequence[Any]) -> None:
    owner, change_id, parent_id, stored, sealed = row
    name = stored if sealed is None else k.open_text(f"file_changes.name|{parent_id}|{stored}", sealed)
    lookup, resealed, kv = sealed_name(txn, int(owner), int(parent_id), name, "file_changes")
    txn.execute("UPDATE file_changes SET name = ?, name_s = ?, kv = ? WHERE id = ?", (lookup, resealed, kv, change_id))


def _convert_path(table: str) -> Any:
    """Re-seal the sealed path of a trash item or an unfinished upload under the active key."""

    def convert(txn: Txn, k: Any, row: Sequence[Any]) -> None:
        _owner_id, row_id, context_id, sealed = row
        context = f"{table}.path|{context_id}"
        txn.execute(f"UPDATE {table} SET path_s = ?, kv = ? WHERE id = ?",
                    (k.seal(context, k.open(context, sealed)), k.version, row_id))

    return convert


def atrest_tables() -> list[SealedTable]:
    return [SealedTable("file_trash", "file_trash", "t.user_id", "t.id, t.node_id, t.path_s",
                        _convert_path("file_trash")),
            SealedTable("file_uploads", "file_uploads", "t.user_id", "t.id, t.id, t.path_s",
                        _convert_path("file_uploads")),
            SealedTable("file_nodes", "file_nodes", "t.user_id", "t.id, t.parent_id, t.name, t.name_s", _convert_node),
            SealedTable("file_changes", "file_changes", "t.user_id", "t.id, t.parent_id, t.name, t.name_s",
                        _convert_change)]
