"""SQL of the key hierarchy: epochs (the salts of master keys) and users' wrapped keys."""

from __future__ import annotations

import os
from typing import Any

from tau.storage.database import Txn

SALT_BYTES = 32


def latest_epoch(txn: Txn) -> tuple[int, bytes] | None:
    row = txn.query_one("SELECT id, salt FROM atrest_epochs ORDER BY id DESC LIMIT 1")
    return (int(row[0]), bytes(row[1])) if row else None


def epoch_salt(txn: Txn, epoch: int) -> bytes:
    return bytes(txn.scalar("SELECT salt FROM atrest_epochs WHERE id = ?", (epoch,)))


def new_epoch(txn: Txn) -> tuple[int, bytes]:
    salt = os.urandom(SALT_BYTES)
    row = txn.query_one("INSERT INTO atrest_epochs (salt, created_at) VALUES (?, ?) RETURNING id",
                        (salt, int(txn.now)))
    assert row is not None
    return int(row[0]), salt


def ensure_epoch(txn: Txn) -> tuple[int, bytes]:
    """The current epoch, made on first use (a fresh database has none)."""
    return latest_epoch(txn) or new_epoch(txn)


def user_key_rows(txn: Txn, user_id: int) -> list[tuple[str, int, int, bytes, int | None]]:
    """(kind, version, epoch, wrapped, retired_at) of every key the user has."""
    rows = txn.query("SELECT kind, version, epoch, wrapped, retired_at FROM user_keys WHERE user_id = ?"
                     " ORDER BY kind, version", (user_id,))
    return [(r[0], int(r[1]), int(r[2]), bytes(r[3]), r[4]) for r in rows]


def insert_user_key(txn: Txn, user_id: int, kind: str, version: int, epoch: int, wrapped: bytes) -> bool:
    """False when a concurrent writer made this key first (the caller then reads theirs)."""
    row = txn.query_one("INSERT INTO user_keys (user_id, kind, version, epoch, wrapped, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, kind, version) DO NOTHING"
                        " RETURNING version", (user_id, kind, version, epoch, wrapped, int(txn.now)))
    return row is not None


def all_keys(txn: Txn, after: tuple[int, str, int], limit: int) -> list[tuple[int, str, int, int, bytes]]:
    """(user_id, kind, version, epoch, wrapped) in key order after ``after``, ``limit`` at most."""
    user_id, kind, version = after
    rows = txn.query("SELECT user_id, kind, version, epoch, wrapped FROM user_keys"
                     " WHERE user_id > ? OR (user_id = ? AND (kind > ? OR (kind = ? AND version > ?)))"
                     " ORDER BY user_id, kind, version LIMIT ?",
                     (user_id, user_id, kind, kind, version, limit))
    return [(int(r[0]), r[1], int(r[2]), int(r[3]), bytes(r[4])) for r in rows]


def rewrap(txn: Txn, user_id: int, kind: str, version: int, epoch: int, wrapped: bytes) -> None:
    txn.execute("UPDATE user_keys SET epoch = ?, wrapped = ? WHERE user_id = ? AND kind = ? AND version = ?",
                (epoch, wrapped, user_id, kind, version))


def retire_data_keys(txn: Txn, user_id: int, below: int) -> None:
    txn.execute("UPDATE user_keys SET retired_at = ? WHERE user_id = ? AND kind = 'data' AND version < ?"
                " AND retired_at IS NULL", (int(txn.now), user_id, below))


def stale_epoch_keys(txn: Txn, epoch: int, limit: int) -> list[tuple[int, str, int, int, bytes]]:
    """Keys still wrapped under an older epoch than ``epoch`` (made while a rotation ran)."""
    rows = txn.query("SELECT user_id, kind, version, epoch, wrapped FROM user_keys WHERE epoch < ?"
                     " ORDER BY user_id LIMIT ?", (epoch, limit))
    return [(int(r[0]), r[1], int(r[2]), int(r[3]), bytes(r[4])) for r in rows]


def drop_retired_data_keys(txn: Txn) -> int:
    """Once no row is sealed under them any more (the converter checked): gone for good."""
    txn.execute("DELETE FROM user_keys WHERE kind = 'data' AND retired_at IS NOT NULL")
    return txn.rowcount


def drop_unused_epochs(txn: Txn) -> None:
    latest = latest_epoch(txn)
    if latest is not None:
        txn.execute("DELETE FROM atrest_epochs WHERE id < ? AND NOT EXISTS"
                    " (SELECT 1 FROM user_keys WHERE user_keys.epoch = atrest_epochs.id)", (latest[0],))


def retired_key_count(txn: Txn) -> int:
    return int(txn.scalar("SELECT COUNT(*) FROM user_keys WHERE kind = 'data' AND retired_at IS NOT NULL"))


def retired_after(txn: Txn, when: int) -> int:
    """Data keys retired after ``when`` (a rotation that recent may still have writers using them)."""
    return int(txn.scalar("SELECT COUNT(*) FROM user_keys WHERE kind = 'data' AND retired_at > ?", (when,)))


ACTIVE_VERSION_SQL = ("(SELECT MAX(version) FROM user_keys WHERE user_keys.user_id = {user} AND"
                      " user_keys.kind = 'data')")


def active_version_sql(user_column: str) -> str:
    """SQL for the active data-key version of the user in ``user_column`` (NULL: no key yet), for
    an ``AtRestTable``'s query of rows not sealed under it (``kv`` differs, 0 = plaintext)."""
    return ACTIVE_VERSION_SQL.format(user=user_column)


def user_exists(txn: Txn, user_id: int) -> bool:
    return bool(txn.scalar("SELECT 1 FROM users WHERE id = ?", (user_id,)))


def pending_count(txn: Txn, table: str, user_column: str, join: str = "", where: str = "") -> int:
    """Rows of ``table`` (alias ``t``) in plaintext (``kv = 0``) or sealed under a key that is not
    their user's active one; ``user_column`` names the owner (through ``join`` if need be)."""
    extra = f" AND ({where})" if where else ""
    return int(txn.scalar(f"SELECT COUNT(*) FROM {table} t{join} WHERE (t.kv = 0 OR t.kv <>"
                          f" {active_version_sql(user_column)}){extra}"))


def pending_rows(txn: Txn, table: str, user_column: str, columns: str, limit: int, join: str = "",
                 where: str = "") -> list[tuple[Any, ...]]:
    """Up to ``limit`` such rows: ``(owner id, *columns)``, plaintext ones first."""
    extra = f" AND ({where})" if where else ""
    return txn.query(f"SELECT {user_column}, {columns} FROM {table} t{join} WHERE (t.kv = 0 OR t.kv <>"
                     f" {active_version_sql(user_column)}){extra} ORDER BY t.kv LIMIT ?", (limit,))
def release_lease(txn: Txn, name: str, holder: str) -> None:
    """The converter's lease, given up at shutdown (``job_leases``, see tau.blobs.orphans.take_lease)."""
    txn.execute("DELETE FROM job_leases WHERE name = ? AND holder = ?", (name, holder))
