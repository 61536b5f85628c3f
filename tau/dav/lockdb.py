"""WebDAV locks in the ``dav_locks`` table: what makes several nodes behave as one (issue 9).

A lock key (path tuple) is stored as text, ``/seg/seg`` with ``%`` and ``/`` escaped in each
segment, so "locks on a key or its ancestors" is an ``IN`` over the ancestors' texts and "locks
within a key" is the range ``[key + '/', key + '0')`` — both served by the ``(tree, path)``
index (byte order: ``COLLATE "C"`` on PostgreSQL). ``tree`` is the DAV mount (files and
calendars share the table). A grant checks conflicts and inserts in one transaction; on
PostgreSQL it first takes a transaction advisory lock on the tree's first segment (shared on the
tree's root), so concurrent grants on different nodes serialise; SQLite has one writer anyway.
Expired rows are ignored by every query and deleted when a grant runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from tau.dav.locks import Key, Lock, conflict_error
from tau.storage.database import Txn, placeholders

_COLUMNS = "token, path, href, exclusive, infinite, owner_xml, principal, timeout, expires"


def key_text(key: Key) -> str:
    return "".join("/" + seg.replace("%", "%25").replace("/", "%2F") for seg in key)


def text_key(text: str) -> Key:
    return tuple(seg.replace("%2F", "/").replace("%25", "%") for seg in text.split("/")[1:])


def _ancestors(key: Key) -> list[str]:
    return [key_text(key[:n]) for n in range(len(key) + 1)]


def _branches(keys: Iterable[Key], deep: Iterable[Key]) -> list[tuple[str, list[Any]]]:
    """Path conditions, each an index search: ``keys`` and their ancestors, then each ``deep`` range."""
    deep = list(deep)
    exact = sorted({text for key in keys for text in _ancestors(key)} | {key_text(k) for k in deep})
    out: list[tuple[str, list[Any]]] = []
    if exact:
        out.append((f"path IN ({placeholders(len(exact))})", exact))
    for key in deep:
        out.append(("path >= ? AND path < ?", [key_text(key) + "/", key_text(key) + "0"]))
    return out


def _row_lock(row: tuple[Any, ...]) -> Lock:
    token, path, href, exclusive, infinite, owner_xml, principal, timeout, expires = row
    return Lock(token, text_key(path), href, bool(exclusive), bool(infinite), owner_xml, principal,
                int(timeout), float(expires))


def select_locks(txn: Txn, tree: str, keys: list[Key], deep: list[Key], now: float) -> list[Lock]:
    """One statement; a UNION ALL so that SQLite, too, searches the index once per branch."""
    parts, params = [], []
    for cond, args in _branches(keys, deep):
        parts.append(f"SELECT {_COLUMNS} FROM dav_locks WHERE tree = ? AND {cond} AND expires > ?")
        params += [tree, *args, now]
    if not parts:
        return []
    found = {row[0]: row for row in txn.query(" UNION ALL ".join(parts), params)}
    return [_row_lock(row) for row in found.values()]


def _advisory(txn: Txn, tree: str, key: Key) -> None:
    """Serialise grants that could conflict, across nodes (PostgreSQL only)."""
    if txn.engine.name != "postgres":
        return

    def h(text: str) -> int:
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)

    root = h("dav-lock\0" + tree)
    if key:
        txn.execute("SELECT pg_advisory_xact_lock_shared(?)", [root])
        txn.execute("SELECT pg_advisory_xact_lock(?)", [h("dav-lock\0" + tree + "\0" + key[0])])
    else:
        txn.execute("SELECT pg_advisory_xact_lock(?)", [root])


def insert_lock(txn: Txn, tree: str, lock: Lock, now: float) -> Lock | None:
    """Insert ``lock`` unless a live lock conflicts; returns that lock instead."""
    _advisory(txn, tree, lock.key)
    txn.execute("DELETE FROM dav_locks WHERE expires <= ?", [now])
    deep = [lock.key] if lock.infinite else []
    for other in select_locks(txn, tree, [lock.key], deep, now):
        if other.conflicts(lock.key, lock.exclusive, lock.infinite):
            return other
    txn.execute(f"INSERT INTO dav_locks (tree, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [tree, lock.token, key_text(lock.key), lock.href, int(lock.exclusive), int(lock.infinite),
                 lock.owner_xml, lock.principal, lock.timeout, lock.expires])
    return None


def update_expiry(txn: Txn, tree: str, lock: Lock, now: float) -> bool:
    txn.execute("UPDATE dav_locks SET timeout = ?, expires = ? WHERE tree = ? AND token = ? AND expires > ?",
                [lock.timeout, lock.expires, tree, lock.token, now])
    return txn.rowcount > 0


def delete_lock(txn: Txn, tree: str, token: str) -> None:
    txn.execute("DELETE FROM dav_locks WHERE tree = ? AND token = ?", [tree, token])


def delete_within(txn: Txn, tree: str, key: Key) -> None:
    text = key_text(key)
    txn.execute("DELETE FROM dav_locks WHERE tree = ? AND (path = ? OR (path >= ? AND path < ?))",
                [tree, text, text + "/", text + "0"])


def _within(key: Key) -> tuple[str, list[str]]:
    text = key_text(key)
    return "(path = ? OR (path >= ? AND path < ?))", [text, text + "/", text + "0"]


def select_within(txn: Txn, tree: str, key: Key, now: float) -> list[Lock]:
    """Live locks at or below ``key`` (an administrator's view of one user's tree)."""
    cond, args = _within(key)
    rows = txn.query(f"SELECT {_COLUMNS} FROM dav_locks WHERE tree = ? AND {cond} AND expires > ? ORDER BY path",
                     [tree, *args, now])
    return [_row_lock(row) for row in rows]


def delete_within_tokens(txn: Txn, tree: str, key: Key, token: str | None = None) -> int:
    """Remove every lock at or below ``key``, or just the one with ``token``; returns the count."""
    cond, args = _within(key)
    extra, more = (" AND token = ?", [token]) if token is not None else ("", [])
    txn.execute(f"DELETE FROM dav_locks WHERE tree = ? AND {cond}{extra}", [tree, *args, *more])
    return txn.rowcount


def delete_held_within(txn: Txn, tree: str, key: Key, principal: str) -> int:
    """Drop ``principal``'s locks at or below ``key`` (a share to them was revoked or made read-only)."""
    text = key_text(key)
    txn.execute("DELETE FROM dav_locks WHERE tree = ? AND principal = ? AND (path = ? OR (path >= ? AND path < ?))",
                [tree, principal, text, text + "/", text + "0"])
    return txn.rowcount


class DbLockStore:
    """``LockStore`` over ``db.run``: every call is one short transaction in the pool's thread."""

    def __init__(self, db: Any, tree: str, clock: Callable[[], float]) -> None:
        self.db, self.tree, self._clock = db, tree, clock

    async def load(self, keys: Iterable[Key], deep: Iterable[Key]) -> list[Lock]:
        found: list[Lock] = await self.db.run("dav_locks_load", select_locks, self.tree, list(keys),
                                              list(deep), self._clock(), readonly=True)
        return found

    async def grant(self, lock: Lock) -> None:
        other = await self.db.run("dav_lock_grant", insert_lock, self.tree, lock, self._clock())
        if other is not None:
            raise conflict_error(other)

    async def refresh(self, lock: Lock) -> bool:
        ok: bool = await self.db.run("dav_lock_refresh", update_expiry, self.tree, lock, self._clock())
        return ok

    async def remove(self, token: str) -> None:
        await self.db.run("dav_lock_remove", delete_lock, self.tree, token)

    async def drop_within(self, key: Key) -> None:
        await self.db.run("dav_locks_drop", delete_within, self.tree, key)
