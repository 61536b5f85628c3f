"""Sealing a store's fields inside its own transactions, and the converter's batch driver.

Stores stay plain ``fn(txn, ...)`` functions: the keyring reaches them as ``txn.keyring`` (the
Database's), and a user's unwrapped keys are memoised on the transaction, so a 1,000-row listing
asks the keyring once. A row written before encryption at rest (``kv = 0``) still has its
plaintext columns and no sealed value: readers fall back to them until the converter ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from tau.atrest import store
from tau.atrest.keyring import Keyring, UserKey
from tau.storage.database import Txn


def key(txn: Txn, user_id: int) -> UserKey:
    """The user's keys (made on first use), once per transaction."""
    memo = txn.memo
    found = memo.get(("atrest-key", user_id))
    if found is None:
        keyring: Keyring | None = txn.keyring
        if keyring is None:
            raise RuntimeError("a transaction without a keyring touched sealed columns (Database(keyring=...))")
        found = memo[("atrest-key", user_id)] = keyring.for_user_txn(txn, user_id)
    return found


def key_if_user(txn: Txn, user_id: int | None) -> UserKey | None:
    """``key`` for a user who may be gone (sealed under a deleted user: shredded, None)."""
    if user_id is None:
        return None
    if ("atrest-key", user_id) not in txn.memo and (
            ("atrest-gone", user_id) in txn.memo or not store.user_exists(txn, user_id)):
        txn.memo[("atrest-gone", user_id)] = True
        return None
    return key(txn, int(user_id))


def open_or(k: UserKey | None, context: str, sealed: Any, plain: str) -> str:
    """The sealed text, or ``plain`` for a row still in plaintext (no sealed value yet); a value
    whose key is gone (a shredded user) reads as empty."""
    if sealed is None:
        return plain
    if k is None:
        return ""
    return k.open_text(context, sealed)


def seal_json(k: UserKey, context: str, fields: dict[str, Any]) -> bytes:
    return k.seal(context, json.dumps(fields, separators=(",", ":")))


def open_json(k: UserKey | None, context: str, sealed: Any) -> dict[str, Any]:
    if sealed is None or k is None:
        return {}
    value: dict[str, Any] = json.loads(k.open(context, sealed))
    return value


class SealedTable:
    """An ``AtRestTable`` from three parts: which rows, and how to (re-)seal one of them.

    ``convert_row(txn, key, row)`` gets the owner's current keys and the row (as ``pending_rows``
    returns it, owner id first) and writes it back sealed under ``key.version`` with ``kv`` set.
    Built without touching anything: the CLI lists tables without a running server."""

    def __init__(self, name: str, table: str, user_column: str, columns: str,
                 convert_row: Callable[[Txn, UserKey, Sequence[Any]], None], join: str = "",
                 where: str = "") -> None:
        self.name, self.table, self.user_column, self.columns = name, table, user_column, columns
        self.convert_row, self.join, self.where = convert_row, join, where

    def pending(self, txn: Txn) -> int:
        return store.pending_count(txn, self.table, self.user_column, self.join, self.where)

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        rows = store.pending_rows(txn, self.table, self.user_column, self.columns, limit, self.join, self.where)
        for row in rows:
            owner = int(row[0])
            txn.memo[("atrest-key", owner)] = k = keyring.for_user_txn(txn, owner)
            self.convert_row(txn, k, row)
        return len(rows)
