"""Sealed WebDAV dead properties of files and folders (issue 16).

``file_props.value`` is what a client PROPPATCHed (the whole property element as XML): it is
sealed into ``value_s`` under the node owner's data key, bound to the node and the property's
name, and ``value`` is left ''. The name (a namespaced XML name the client chose, such as
``{http://apple.com/ns/ical/}calendar-color``) stays readable: PROPFIND asks for properties by
name, and names are vocabulary, not what users wrote. Rows from before (``kv = 0``) are sealed by
the converter, and re-sealed after a rotation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tau.atrest.keyring import UserKey
from tau.atrest.sealed import SealedTable, key, key_if_user
from tau.storage.database import Txn


def _context(node_id: int, name: str) -> str:
    return f"file_props.value|{node_id}|{name}"


def sealed_rows(txn: Txn, user_id: int, node_id: int, props: Iterable[tuple[str, str]]
                ) -> list[tuple[int, str, str, bytes, int]]:
    """``(node_id, name, '', sealed value, kv)`` rows for ``file_props`` of ``user_id``'s node."""
    k = key(txn, user_id)
    return [(node_id, name, "", k.seal(_context(node_id, name), value), k.version) for name, value in props]


def value_of(k: UserKey | None, node_id: int, name: str, stored: str, sealed: Any) -> str:
    """The property's XML (``stored`` itself for a row still in plaintext)."""
    if sealed is None:
        return stored
    if k is None:
        return ""
    return k.open_text(_context(node_id, name), sealed)


def opened(txn: Txn, rows: list[tuple[Any, ...]], out: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    """``(node_id, owner, name, value, value_s)`` rows into ``out`` (node → name → XML), opened."""
    for node_id, owner, name, value, sealed in rows:
        k = key_if_user(txn, int(owner)) if sealed is not None else None
        out.setdefault(int(node_id), {})[name] = value_of(k, int(node_id), name, value, sealed)
    return out


def insert(txn: Txn, user_id: int, node_id: int, props: dict[str, str], upsert: bool = False) -> None:
    rows = sealed_rows(txn, user_id, node_id, props.items())
    if not rows:
        return
    conflict = (" ON CONFLICT (node_id, name) DO UPDATE SET value = excluded.value, value_s = excluded.value_s,"
                " kv = excluded.kv") if upsert else ""
    txn.executemany(f"INSERT INTO file_props (node_id, name, value, value_s, kv) VALUES (?, ?, ?, ?, ?){conflict}",
                    rows)


def _convert(txn: Txn, k: UserKey, row: Sequence[Any]) -> None:
    _owner, node_id, name, stored, sealed = row
    value = value_of(k, int(node_id), str(name), str(stored), sealed)
    txn.execute("UPDATE file_props SET value = '', value_s = ?, kv = ? WHERE node_id = ? AND name = ?",
                (k.seal(_context(int(node_id), str(name)), value), k.version, node_id, name))


def atrest_tables() -> list[SealedTable]:
    return [SealedTable("file_props", "file_props", "n.user_id", "t.node_id, t.name, t.value, t.value_s", _convert,
                        join=" JOIN file_nodes n ON n.id = t.node_id")]
