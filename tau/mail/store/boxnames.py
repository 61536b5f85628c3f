"""Mailbox names at rest (issue 16): a keyed hash to find a name, the name itself sealed.

``mailboxes.name`` holds ``lookup`` of the name (HMAC under the owner's index key), so equality
lookups and ``UNIQUE (user_id, name)`` work without the plaintext; ``sealed_name`` is the name
sealed under the owner's data key, ``parent`` the lookup of the parent's name (LIST's
\\HasChildren). Listings decrypt and sort in Python. Rows from before the migration keep their
plaintext name with ``kv`` 0 until the first write to the user's mailboxes (``seal_user``) or the
converter seals them; lookups match either form (``mailboxes._BY_NAME``). Lost subscriptions
(``mail_lost_subscriptions``) are kept the same way.
"""

from __future__ import annotations

import base64

from tau.atrest.keyring import UserKey
from tau.mail.store.api import DELIMITER
from tau.storage.database import Txn

PURPOSE = "mailbox"


def lookup(uk: UserKey, name: str) -> str:
    """Mailbox names are case-sensitive (INBOX is normalised before): hashed as they are."""
    return uk.lookup(PURPOSE, name)


def parent_lookup(uk: UserKey, name: str) -> str | None:
    parent, sep, _ = name.rpartition(DELIMITER)
    return lookup(uk, parent) if sep and parent else None


def seal(uk: UserKey, name: str, table: str = "mailboxes") -> str:
    return base64.b64encode(uk.seal(f"{table}.name|{lookup(uk, name)}", name)).decode("ascii")


def name_of(uk: UserKey | None, stored: str, kv: int, sealed: str | None, table: str = "mailboxes") -> str:
    """The plaintext name of a row (``stored`` itself when the row is not sealed yet)."""
    if not kv or sealed is None:
        return stored
    assert uk is not None
    return uk.open_text(f"{table}.name|{stored}", base64.b64decode(sealed))


def seal_user(txn: Txn, uk: UserKey) -> UserKey:
    """Seal the user's mailbox names and lost subscriptions still in plaintext (all at once, so a
    user's names are never half in one form); returns ``uk``."""
    for table, extra in (("mailboxes", True), ("mail_lost_subscriptions", False)):
        rows = txn.query(f"SELECT id, name FROM {table} WHERE user_id = ? AND kv = 0", (uk.user_id,))
        for row_id, name in rows:
            values: list[object] = [lookup(uk, name), seal(uk, name, table), uk.version]
            sets = "name = ?, sealed_name = ?, kv = ?"
            if extra:
                sets += ", parent = ?"
                values.append(parent_lookup(uk, name))
            txn.execute(f"UPDATE {table} SET {sets} WHERE id = ? AND kv = 0", [*values, row_id])
    return uk


def reseal_user(txn: Txn, uk: UserKey, limit: int) -> int:
    """Re-seal names under a retired data key (after ``tau keys rotate``)."""
    done = 0
    for table in ("mailboxes", "mail_lost_subscriptions"):
        rows = txn.query(f"SELECT id, name, kv, sealed_name FROM {table} WHERE user_id = ? AND kv > 0 AND kv < ?"
                         " LIMIT ?", (uk.user_id, uk.version, limit - done))
        for row_id, stored, kv, sealed in rows:
            name = name_of(uk, stored, int(kv), sealed, table)
            txn.execute(f"UPDATE {table} SET sealed_name = ?, kv = ? WHERE id = ?",
                        (seal(uk, name, table), uk.version, row_id))
        done += len(rows)
    return done
