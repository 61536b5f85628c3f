"""Per-user DAV collections (calendars, address books): the table parts both domains share.

A collection's name is its URL segment and stays readable; its display name and description are
sealed at rest under the owner's key, bound to owner and name (``sealed``, ``kv``). Dead
properties live in a ``(collection, name, value)`` table, shares in a ``(collection, grantee,
name, permission)`` one. Transaction functions as in every store: ``fn(txn, ...)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tau.atrest.keyring import UserKey
from tau.atrest.sealed import SealedTable, key, open_json, seal_json
from tau.auth import accounts
from tau.storage.database import Txn

NAME = re.compile(r"^[^/\\\x00-\x1f]{1,128}$")


def valid_name(name: str) -> bool:
    """A collection name a URL segment can carry (no slash, no control characters, not . or ..)."""
    return bool(NAME.match(name)) and name not in (".", "..")


def user_id(txn: Txn, address: str) -> int | None:
    user = accounts.get_user(txn, address.lower())
    return None if user is None else user.id


def share_alias(name: str, owner: str, taken: Iterable[str], reserved: Iterable[str] = ()) -> str:
    """The name a share gets in the grantee's home: ``NAME-OWNERLOCALPART``, numbered if taken."""
    taken, reserved = set(taken), set(reserved)
    base = f"{name}-{owner.split('@')[0]}"[:120]
    alias, n = base, 1
    while alias in taken or alias.lower() in reserved:
        n += 1
        alias = f"{base}-{n}"
    return alias


class CollectionTable:
    """One domain's collection tables: ``table`` (with ``user_id``, ``name``, ``display_name``,
    ``description``, ``sealed``, ``kv``), its dead properties and shares keyed by ``column``."""

    def __init__(self, table: str, props_table: str, shares_table: str, column: str) -> None:
        self.table, self.props_table, self.shares_table, self.column = table, props_table, shares_table, column

    def context(self, owner_id: int, name: str) -> str:
        return f"{self.table}|{owner_id}|{name}"

    def seal(self, txn: Txn, owner_id: int, name: str, display_name: str, description: str = ""
             ) -> tuple[bytes, int]:
        """(sealed labels, key version) for an INSERT or UPDATE of the collection's row."""
        k = key(txn, owner_id)
        return self._seal(k, owner_id, name, display_name, description), k.version

    def _seal(self, k: UserKey, owner_id: int, name: str, display_name: str, description: str) -> bytes:
        return seal_json(k, self.context(owner_id, name), {"d": display_name, "s": description})

    def labels(self, txn: Txn, owner_id: int, name: str, display_name: str, description: str,
               sealed: Any) -> tuple[str, str]:
        """(display name, description) of a row: the sealed ones, or a row still in plaintext."""
        if sealed is None:
            return display_name, description
        fields = open_json(key(txn, owner_id), self.context(owner_id, name), sealed)
        return fields["d"], fields["s"]

    def set_labels(self, txn: Txn, collection_id: int, owner_id: int, name: str, display_name: str,
                   description: str) -> None:
        txn.execute(f"UPDATE {self.table} SET display_name = '', description = '', sealed = ?, kv = ?,"
                    " modified_at = ? WHERE id = ?",
                    (*self.seal(txn, owner_id, name, display_name, description), int(txn.now), collection_id))

    def props(self, txn: Txn, collection_id: int) -> dict[str, str]:
        return {r[0]: r[1] for r in txn.query(f"SELECT name, value FROM {self.props_table} WHERE {self.column} = ?",
                                              (collection_id,))}

    def set_props(self, txn: Txn, collection_id: int, to_set: dict[str, str], remove: list[str]) -> None:
        for name in [*remove, *to_set]:
            txn.execute(f"DELETE FROM {self.props_table} WHERE {self.column} = ? AND name = ?", (collection_id, name))
        for name, value in to_set.items():
            txn.execute(f"INSERT INTO {self.props_table} ({self.column}, name, value) VALUES (?, ?, ?)",
                        (collection_id, name, value))

    def shares_of(self, txn: Txn, collection_id: int) -> list[tuple[str, str]]:
        """(grantee address, permission) of one collection."""
        return [(r[0], r[1]) for r in txn.query(f"SELECT u.address, s.permission FROM {self.shares_table} s"
                                                f" JOIN users u ON u.id = s.grantee_id WHERE s.{self.column} = ?"
                                                " ORDER BY u.address", (collection_id,))]

    def _convert(self, txn: Txn, k: UserKey, row: Any) -> None:
        owner, collection_id, name, display, description, sealed = row
        if sealed is not None:
            fields = open_json(k, self.context(owner, name), sealed)
            display, description = fields["d"], fields["s"]
        txn.execute(f"UPDATE {self.table} SET display_name = '', description = '', sealed = ?, kv = ? WHERE id = ?",
                    (self._seal(k, owner, name, display, description), k.version, collection_id))

    def atrest_table(self) -> SealedTable:
        """The converter's view of the table: labels of rows from before sealed, or re-sealed."""
        return SealedTable(self.table, self.table, "t.user_id",
                           "t.id, t.name, t.display_name, t.description, t.sealed", self._convert)
