"""Members of per-user DAV collections (calendar objects, cards): the sealing and change-log
parts both domains share.

A member's text is sealed under the collection owner's key, bound to the collection and the
keyed lookup hash of the member's name (``TABLE.data|collection|lookup``). Each write bumps the
collection's ``sync_seq`` and records the name in the change log (``name`` its lookup hash,
``name_s`` the name sealed): sync-collection (RFC 6578) reads it; the oldest tombstones beyond a
bound are forgotten and the collection's ``pruned_seq`` says which tokens must then resync.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.atrest.keyring import UserKey
from tau.atrest.sealed import SealedTable, key
from tau.storage.database import Txn, placeholders


class MemberTable:
    """``table`` (members, by ``column``) of ``parent`` collections, with its ``changes`` log."""

    def __init__(self, table: str, parent: str, column: str, changes: str, name_purpose: str,
                 tombstones: int) -> None:
        self.table, self.parent, self.column, self.changes = table, parent, column, changes
        self.name_purpose, self.tombstones = name_purpose, tombstones

    def owner_key(self, txn: Txn, collection_id: int) -> UserKey:
        """The collection owner's keys (members, changes and the collection's own fields are sealed
        under them), the owner looked up once per transaction."""
        memo_key = (f"{self.parent}-owner", collection_id)
        owner = txn.memo.get(memo_key)
        if owner is None:
            owner = txn.memo[memo_key] = int(
                txn.scalar(f"SELECT user_id FROM {self.parent} WHERE id = ?", (collection_id,)) or 0)
        return key(txn, int(owner))

    def context(self, collection_id: int, lookup: str, part: str = "") -> str:
        return f"{self.table}{part}|{collection_id}|{lookup}"

    def open_data(self, txn: Txn, collection_id: int, stored_name: str, data: str, data_s: Any) -> str:
        """A member's text from its row (sealed, or a row still in plaintext)."""
        if data_s is None:
            return data
        return self.owner_key(txn, collection_id).open_text(self.context(collection_id, stored_name, ".data"), data_s)

    def rows_named(self, txn: Txn, collection_id: int, names: Sequence[str], columns: str) -> list[tuple[Any, ...]]:
        """Rows (``columns``) of the members named ``names``, 250 names a query: sealed rows by the
        lookup hash, rows still in plaintext by the name (mid-conversion a name may have both)."""
        names = list(dict.fromkeys(names))
        out: list[tuple[Any, ...]] = []
        k = self.owner_key(txn, collection_id)
        for i in range(0, len(names), 250):
            chunk = names[i:i + 250]
            wanted = [k.lookup(self.name_purpose, n) for n in chunk] + chunk
            out += txn.query(f"SELECT {columns} FROM {self.table} WHERE {self.column} = ? AND name IN"
                             f" ({placeholders(len(wanted))})", (collection_id, *wanted))
        return out

    def rows_with_ids(self, txn: Txn, ids: Sequence[int], columns: str) -> list[tuple[Any, ...]]:
        """Rows (``columns``) of the members with these ids, 500 a query."""
        ids = list(dict.fromkeys(ids))
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += txn.query(f"SELECT {columns} FROM {self.table} WHERE id IN ({placeholders(len(chunk))})", chunk)
        return out

    # -- the change log ---------------------------------------------------------------------

    def _change_context(self, collection_id: int, lookup: str) -> str:
        return f"{self.changes}|{collection_id}|{lookup}"

    def bump(self, txn: Txn, collection_id: int, name: str, deleted: bool) -> int:
        """Next sync sequence of the collection, with ``name`` recorded as changed (RFC 6578 §3)."""
        txn.execute(f"UPDATE {self.parent} SET sync_seq = sync_seq + 1, modified_at = ? WHERE id = ?",
                    (int(txn.now), collection_id))
        seq = int(txn.scalar(f"SELECT sync_seq FROM {self.parent} WHERE id = ?", (collection_id,)))
        k = self.owner_key(txn, collection_id)
        lookup = k.lookup(self.name_purpose, name)
        txn.execute(f"DELETE FROM {self.changes} WHERE {self.column} = ? AND name IN (?, ?)",
                    (collection_id, lookup, name))
        txn.execute(f"INSERT INTO {self.changes} ({self.column}, name, seq, deleted, name_s, kv)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (collection_id, lookup, seq, 1 if deleted else 0,
                     k.seal(self._change_context(collection_id, lookup), name), k.version))
        if deleted and seq % 100 == 0:
            self._prune(txn, collection_id)
        return seq

    def _prune(self, txn: Txn, collection_id: int) -> None:
        """Forget the oldest tombstones beyond ``tombstones``; tokens older than them must resync."""
        cut = txn.scalar(f"SELECT seq FROM {self.changes} WHERE {self.column} = ? AND deleted = 1 ORDER BY seq DESC"
                         f" LIMIT 1 OFFSET {int(self.tombstones)}", (collection_id,))
        if cut is not None:
            txn.execute(f"DELETE FROM {self.changes} WHERE {self.column} = ? AND deleted = 1 AND seq <= ?",
                        (collection_id, cut))
            txn.execute(f"UPDATE {self.parent} SET pruned_seq = ? WHERE id = ? AND pruned_seq < ?",
                        (cut, collection_id, cut))

    def changed_since(self, txn: Txn, collection_id: int, since: int, limit: int | None = None
                      ) -> list[tuple[str, int, int]]:
        """(name, seq, deleted) of the changes after ``since``, oldest first (at most ``limit``)."""
        cap = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = txn.query(f"SELECT name, seq, deleted, name_s FROM {self.changes} WHERE {self.column} = ? AND seq > ?"
                         f" ORDER BY seq{cap}", (collection_id, since))
        if not rows:
            return []
        k = self.owner_key(txn, collection_id)
        return [(r[0] if r[3] is None else k.open_text(self._change_context(collection_id, r[0]), r[3]), r[1], r[2])
                for r in rows]

    def _convert_change(self, txn: Txn, k: UserKey, row: Sequence[Any]) -> None:
        _owner, collection_id, stored, name_s = row
        name = stored if name_s is None else k.open_text(self._change_context(collection_id, stored), name_s)
        lookup = k.lookup(self.name_purpose, name)
        if stored != lookup and txn.scalar(f"SELECT 1 FROM {self.changes} WHERE {self.column} = ? AND name = ?",
                                           (collection_id, lookup)):  # changed again since: the newer row stays
            txn.execute(f"DELETE FROM {self.changes} WHERE {self.column} = ? AND name = ?", (collection_id, stored))
            return
        txn.execute(f"UPDATE {self.changes} SET name = ?, name_s = ?, kv = ? WHERE {self.column} = ? AND name = ?",
                    (lookup, k.seal(self._change_context(collection_id, lookup), name), k.version, collection_id,
                     stored))

    def changes_atrest_table(self) -> SealedTable:
        """The converter's view of the change log: names of rows from before sealed, or re-sealed."""
        return SealedTable(self.changes, self.changes, "p.user_id", f"t.{self.column}, t.name, t.name_s",
                           self._convert_change, f" JOIN {self.parent} p ON p.id = t.{self.column}")
