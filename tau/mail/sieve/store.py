"""The SQL of Sieve: a user's scripts (ManageSieve, REST) and vacation's memory of whom it answered.

Script names are unique per user; at most one script is active (RFC 5804 §2.8). Every function
runs inside the caller's transaction (``db.run``); a missing user is ``SieveStoreError``.
Script texts and names are sealed at rest under the owner's data key (issue 16; ``kv`` the
version, 0 a plaintext row from before, sealed by ``SieveTable`` in the background). A sealed
row's ``name`` column holds the keyed lookup hash of the name (``name_s`` the name itself), so
lookups by name and ``UNIQUE (user_id, name)`` work without plaintext; listings open the names
and sort them in Python. A row whose ``name_s`` is NULL (from before) still has its name in
plaintext: lookups match either form, and a user's first write seals all their rows at once.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.atrest.keyring import Keyring, UserKey
from tau.atrest.sealed import key
from tau.atrest.store import active_version_sql
from tau.storage.database import Txn


class SieveStoreError(Exception):
    """What a ManageSieve reply or HTTP error names: ``code`` is ``nonexistent``, ``active`` or ``exists``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Script:
    name: str
    content: str
    active: bool


def _user_id(txn: Txn, address: str) -> int:
    row = txn.query_one("SELECT id FROM users WHERE address = ?", (address.lower(),))
    if row is None:
        raise SieveStoreError("nonexistent", f"no such user {address}")
    return int(row[0])


PURPOSE = "sieve-name"
# a script by name: the lookup hash of a sealed row's name, or the plaintext of a row from before
_NAME = "((name = ? AND name_s IS NOT NULL) OR (name = ? AND name_s IS NULL))"


def _lookup(uk: UserKey, name: str) -> str:
    """Script names are case-sensitive (RFC 5804 compares them octet by octet): hashed as they are."""
    return uk.lookup(PURPOSE, name)


def _by_name(uk: UserKey, name: str) -> tuple[str, str]:
    return _lookup(uk, name), name


def _seal_name(uk: UserKey, name: str) -> bytes:
    return uk.seal(f"sieve_scripts.name|{_lookup(uk, name)}", name)


def _name(uk: UserKey, stored: str, sealed: bytes | memoryview | None) -> str:
    if sealed is None:
        return stored
    return uk.open_text(f"sieve_scripts.name|{stored}", sealed)


def list_scripts(txn: Txn, user: str) -> list[tuple[str, bool]]:
    user_id = _user_id(txn, user)
    uk = key(txn, user_id)
    rows = txn.query("SELECT name, name_s, active FROM sieve_scripts WHERE user_id = ?", (user_id,))
    return sorted((_name(uk, str(name), sealed), bool(active)) for name, sealed, active in rows)


def _content(txn: Txn, keyring: Keyring, user_id: int, script_id: int, kv: int, stored: str) -> str:
    """A script's text: ``content`` is the base64 of it sealed under the user's data key (``kv`` 0:
    a row from before encryption at rest, still plaintext)."""
    if not kv:
        return stored
    return keyring.for_user_txn(txn, user_id).open_text(f"sieve_scripts.content|{script_id}", b64decode(stored))


def _seal(txn: Txn, keyring: Keyring, user_id: int, script_id: int, content: str, name: str | None = None) -> None:
    """Seal the text (and, given ``name``, the name) of a row under the user's active data key."""
    uk = keyring.for_user_txn(txn, user_id)
    sealed = b64encode(uk.seal(f"sieve_scripts.content|{script_id}", content)).decode("ascii")
    if name is None:
        txn.execute("UPDATE sieve_scripts SET content = ?, kv = ?, size = ? WHERE id = ?",
                    (sealed, uk.version, len(content), script_id))
    else:
        txn.execute("UPDATE sieve_scripts SET content = ?, kv = ?, size = ?, name = ?, name_s = ? WHERE id = ?",
                    (sealed, uk.version, len(content), _lookup(uk, name), _seal_name(uk, name), script_id))


def _convert_row(txn: Txn, keyring: Keyring, user_id: int, row: Sequence[Any]) -> None:
    """A row ``(id, kv, content, name, name_s)`` re-sealed whole under the user's active data key."""
    script_id, kv, stored, name, sealed_name = int(row[0]), int(row[1]), str(row[2]), str(row[3]), row[4]
    uk = keyring.for_user_txn(txn, user_id)
    _seal(txn, keyring, user_id, script_id, _content(txn, keyring, user_id, script_id, kv, stored),
          _name(uk, name, sealed_name))


def seal_user(txn: Txn, user_id: int) -> UserKey:
    """Seal the user's rows whose names are still in plaintext (all at once, before a write, so a
    name is never both a plaintext row and a hashed one); returns the user's keys."""
    uk = key(txn, user_id)
    keyring: Keyring = txn.keyring
    for row in txn.query("SELECT id, kv, content, name, name_s FROM sieve_scripts WHERE user_id = ?"
                         " AND name_s IS NULL", (user_id,)):
        _convert_row(txn, keyring, user_id, row)
    return uk


def _exists(txn: Txn, user_id: int, name: str) -> tuple[int, bool] | None:
    row = txn.query_one(f"SELECT id, active FROM sieve_scripts WHERE user_id = ? AND {_NAME}",
                        (user_id, *_by_name(key(txn, user_id), name)))
    return None if row is None else (int(row[0]), bool(row[1]))


def get_script(txn: Txn, keyring: Keyring, user: str, name: str) -> Script | None:
    user_id = _user_id(txn, user)
    uk = key(txn, user_id)
    row = txn.query_one(f"SELECT name, content, active, id, kv, name_s FROM sieve_scripts WHERE user_id = ?"
                        f" AND {_NAME}", (user_id, *_by_name(uk, name)))
    return None if row is None else Script(_name(uk, str(row[0]), row[5]),
                                           _content(txn, keyring, user_id, int(row[3]), int(row[4]), str(row[1])),
                                           bool(row[2]))


def active_script(txn: Txn, keyring: Keyring, user: str) -> Script | None:
    user_id = _user_id(txn, user)
    row = txn.query_one("SELECT name, content, active, id, kv, name_s FROM sieve_scripts WHERE user_id = ?"
                        " AND active = 1", (user_id,))
    if row is None:
        return None
    return Script(_name(key(txn, user_id), str(row[0]), row[5]),
                  _content(txn, keyring, user_id, int(row[3]), int(row[4]), str(row[1])), True)


def space_used(txn: Txn, user: str, except_name: str) -> tuple[int, int]:
    """(number of scripts, bytes of their content) other than ``except_name``."""
    user_id = _user_id(txn, user)
    row = txn.query_one("SELECT COUNT(*), COALESCE(SUM(CASE WHEN kv = 0 THEN LENGTH(content) ELSE size END), 0)"
                        f" FROM sieve_scripts WHERE user_id = ? AND NOT {_NAME}",
                        (user_id, *_by_name(key(txn, user_id), except_name)))
    assert row is not None
    return int(row[0]), int(row[1])


def put_script(txn: Txn, keyring: Keyring, user: str, name: str, content: str, activate: bool = False) -> None:
    """Create or replace ``name`` (its text and name sealed); ``activate`` makes it the active script too."""
    user_id = _user_id(txn, user)
    uk = seal_user(txn, user_id)
    found = _exists(txn, user_id, name)
    if found is None:
        script_id = int(txn.scalar("INSERT INTO sieve_scripts (user_id, name, content, active, updated_at)"
                                   " VALUES (?, ?, '', 0, ?) RETURNING id", (user_id, _lookup(uk, name), int(txn.now))))
    else:
        script_id = found[0]
        txn.execute("UPDATE sieve_scripts SET updated_at = ? WHERE id = ?", (int(txn.now), script_id))
    _seal(txn, keyring, user_id, script_id, content, name)
    if activate:
        set_active(txn, user, name)


def set_active(txn: Txn, user: str, name: str) -> None:
    """SETACTIVE: ``name`` becomes the only active script; the empty name deactivates all."""
    user_id = _user_id(txn, user)
    found = _exists(txn, user_id, name) if name else None
    if name and found is None:
        raise SieveStoreError("nonexistent", f"no script named {name}")
    txn.execute("UPDATE sieve_scripts SET active = 0 WHERE user_id = ? AND active = 1", (user_id,))
    if found is not None:
        txn.execute("UPDATE sieve_scripts SET active = 1 WHERE id = ?", (found[0],))


def delete_script(txn: Txn, user: str, name: str) -> None:
    """DELETESCRIPT: the active script may not be deleted (RFC 5804 §2.10)."""
    script = _exists(txn, _user_id(txn, user), name)
    if script is None:
        raise SieveStoreError("nonexistent", f"no script named {name}")
    if script[1]:
        raise SieveStoreError("active", "the active script cannot be deleted; deactivate it first")
    txn.execute("DELETE FROM sieve_scripts WHERE id = ?", (script[0],))


def rename_script(txn: Txn, user: str, old: str, new: str) -> None:
    user_id = _user_id(txn, user)
    uk = seal_user(txn, user_id)
    found = _exists(txn, user_id, old)
    if found is None:
        raise SieveStoreError("nonexistent", f"no script named {old}")
    if old != new and _exists(txn, user_id, new) is not None:
        raise SieveStoreError("alreadyexists", f"a script named {new} exists already")
    txn.execute("UPDATE sieve_scripts SET name = ?, name_s = ?, updated_at = ? WHERE id = ?",
                (_lookup(uk, new), _seal_name(uk, new), int(txn.now), found[0]))


# -- delivery -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryState:
    """What delivery needs, read in one transaction: each recipient's active script and which
    vacation handles answered ``sender`` recently (``answered[user]``)."""

    scripts: dict[str, str]
    answered: dict[str, set[str]]

    def merged(self, other: DeliveryState) -> DeliveryState:
        return DeliveryState({**self.scripts, **other.scripts}, {**self.answered, **other.answered})


def delivery_state(txn: Txn, keyring: Keyring, users: Sequence[str], sender: str) -> DeliveryState:
    """Read at RCPT time, in the recipient lookup's transaction (no extra read at end of data)."""
    if not users:
        return DeliveryState({}, {})
    placeholders, params = txn.in_list(u.lower() for u in users)
    rows = txn.query("SELECT u.address, s.content, s.user_id, s.id, s.kv FROM sieve_scripts s"
                     f" JOIN users u ON u.id = s.user_id WHERE s.active = 1 AND u.address IN {placeholders}", params)
    scripts = {str(r[0]): _content(txn, keyring, int(r[2]), int(r[3]), int(r[4]), str(r[1])) for r in rows}
    answered: dict[str, set[str]] = {}
    if scripts and sender:
        placeholders, params = txn.in_list(scripts)
        for address, handle in txn.query(
                "SELECT u.address, v.handle FROM sieve_vacation_seen v JOIN users u ON u.id = v.user_id"
                f" WHERE v.sender = ? AND v.until > ? AND u.address IN {placeholders}",
                [sender.lower(), int(txn.now), *params]):
            answered.setdefault(str(address), set()).add(str(handle))
    return DeliveryState(scripts, answered)


def remember_answer(txn: Txn, user: str, sender: str, handle: str, period: int) -> None:
    """Vacation answered ``sender`` for ``user``: no second answer for ``period`` seconds."""
    user_id = _user_id(txn, user)
    until = int(txn.now) + max(0, int(period))
    txn.execute("DELETE FROM sieve_vacation_seen WHERE user_id = ? AND until < ?", (user_id, int(txn.now)))
    # an upsert: two deliveries from one sender at once must not fail each other's transaction
    txn.execute("INSERT INTO sieve_vacation_seen (user_id, sender, handle, until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, sender, handle) DO UPDATE SET until = excluded.until",
                (user_id, sender.lower(), handle, until))


class SieveTable:
    """The ``AtRestTable`` of Sieve scripts: seals plaintext texts and names, re-seals after a rotation."""

    name = "sieve"

    def pending(self, txn: Txn) -> int:
        return int(txn.scalar(f"SELECT COUNT(*) FROM sieve_scripts s WHERE {_PENDING}"))

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        rows = txn.query(f"SELECT s.user_id, s.id, s.kv, s.content, s.name, s.name_s FROM sieve_scripts s"
                         f" WHERE {_PENDING} LIMIT ?", (int(limit),))
        for user_id, *row in rows:
            _convert_row(txn, keyring, int(user_id), row)
        return len(rows)


_PENDING = f"s.kv = 0 OR s.name_s IS NULL OR s.kv < {active_version_sql('s.user_id')}"
