"""Mail's ``AtRestTable`` (tau.atrest.convert): seals rows from before encryption at rest and
re-seals rows under a retired data key, a batch per transaction while the server runs.

Pending work, in the order it is done:
0. mailbox names (and lost subscriptions) in plaintext or under a retired key, a user's at a time;
1. ``messages`` and ``mail_purge_pending`` rows in plaintext (``kv`` 0) or under a retired key:
   their text columns sealed under the owner's active key; a plaintext row also gets its
   owner's ``mail_content`` row and tokens, built from the shared plaintext ``message_text``,
   ``message_headers`` and ``message_sort_keys`` rows of its blob (or its ``parsed`` JSON);
2. ``mail_content`` rows under a retired key: re-sealed (tokens use the index key, which a
   rotation keeps);
3. ``mail_content`` rows without keyed THREAD keys (stored before ``mail_thread_keys``): computed
   from their sealed sort keys (``threadkeys``);
4. once no plaintext message row is left: the shared plaintext rows, deleted.
Each step is idempotent (an UPDATE only applies to the ``kv`` it read), so a crash or a second
node loses nothing; the rows' own ``kv`` is the cursor.
"""

from __future__ import annotations

from typing import Any

from tau.atrest.keyring import Keyring, UserKey
from tau.atrest.store import active_version_sql
from tau.mail.store import boxnames, sealed, threadkeys
from tau.mail.store.sortkeys import SortKeys, keys_of_json
from tau.storage.database import Txn

TABLES = ("messages", "mail_purge_pending")
PLAIN_TABLES = ("message_text", "message_headers", "message_sort_keys")
NAME_TABLES = ("mailboxes", "mail_lost_subscriptions")
_ACTIVE = active_version_sql("b.user_id")
_STALE = f"(m.kv = 0 OR m.kv < {_ACTIVE})"
_SET = ", ".join(f"{c} = ?" for c in sealed.COLUMNS)


class MailTable:
    """Message rows, per-user content and the plaintext index rows left from before sealing."""

    name = "mail"

    def pending(self, txn: Txn) -> int:
        total = 0
        for table in TABLES:
            total += int(txn.scalar(f"SELECT COUNT(*) FROM {table} m JOIN mailboxes b ON b.id = m.mailbox_id"
                                    f" WHERE {_STALE}"))
        total += int(txn.scalar(f"SELECT COUNT(*) FROM mail_content c WHERE c.kv < {active_version_sql('c.user_id')}"))
        total += int(txn.scalar("SELECT COUNT(*)" + threadkeys.MISSING))
        for table in NAME_TABLES:
            total += int(txn.scalar(f"SELECT COUNT(*) FROM {table} b WHERE b.kv = 0 OR b.kv < {_ACTIVE}"))
        for table in PLAIN_TABLES:
            total += int(txn.scalar(f"SELECT COUNT(*) FROM {table}"))
        return total

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        done = _seal_names(txn, keyring, limit)
        for table in TABLES:
            done += seal_rows(txn, keyring, table, limit - done)
            if done >= limit:
                return done
        done += _reseal_content(txn, keyring, limit - done)
        done += fill_thread_keys(txn, keyring, limit - done)
        if done < limit and not any(has_plain(txn, None, table) for table in TABLES):
            done += _drop_plain(txn, limit - done)
        return done


def _seal_names(txn: Txn, keyring: Keyring, limit: int) -> int:
    """Mailbox names and lost subscriptions: a user's at a time (``boxnames.seal_user``)."""
    done = 0
    for table in NAME_TABLES:
        users = [int(r[0]) for r in txn.query(f"SELECT DISTINCT b.user_id FROM {table} b"
                                              f" WHERE b.kv = 0 OR b.kv < {_ACTIVE} LIMIT ?", (int(limit),))]
        for user_id in users:
            uk = keyring.for_user_txn(txn, user_id)
            before = int(txn.scalar(f"SELECT COUNT(*) FROM {table} WHERE user_id = ? AND kv = 0", (user_id,)))
            boxnames.seal_user(txn, uk)
            done += before + boxnames.reseal_user(txn, uk, 10_000)
            if done >= limit:
                return done
    return done


def has_plain(txn: Txn, mailbox_id: int | None, table: str = "messages") -> bool:
    """Whether ``mailbox_id`` (None: any mailbox) still has rows in plaintext."""
    where, params = ("mailbox_id = ? AND kv = 0", [int(mailbox_id)]) if mailbox_id is not None else ("kv = 0", [])
    return txn.query_one(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", params) is not None


def convert_mailbox(txn: Txn, keyring: Keyring, mailbox_id: int, limit: int = 500) -> int:
    """Seal a batch of the mailbox's plaintext rows (before a search, sort or thread of it)."""
    return seal_rows(txn, keyring, "messages", limit, int(mailbox_id))


def seal_rows(txn: Txn, keyring: Keyring, table: str, limit: int, mailbox_id: int | None = None) -> int:
    """Seal (or re-seal) up to ``limit`` rows of ``table``; returns how many."""
    if limit <= 0:
        return 0
    where, params = (f"{_STALE}", []) if mailbox_id is None else ("m.mailbox_id = ? AND m.kv = 0", [mailbox_id])
    rows = txn.query(f"SELECT m.mailbox_id, m.uid, b.user_id, m.blob_key, m.kv, {', '.join(sealed.COLUMNS)}"
                     f" FROM {table} m JOIN mailboxes b ON b.id = m.mailbox_id WHERE {where} LIMIT ?",
                     [*params, int(limit)])
    for box, uid, user_id, key, kv, *values in rows:
        uk = keyring.for_user_txn(txn, int(user_id))
        plain = sealed.open_row(uk, key, int(kv), values)
        if int(kv) == uk.version:
            continue
        txn.execute(f"UPDATE {table} SET {_SET}, kv = ? WHERE mailbox_id = ? AND uid = ? AND kv = ?",
                    [*sealed.seal_row(uk, key, plain), uk.version, box, uid, kv])
        if not int(kv):
            _content_from_plain(txn, uk, key, plain[-1] or "")
    return len(rows)


def _content_from_plain(txn: Txn, uk: UserKey, key: str, parsed_json: str) -> None:
    text = txn.scalar("SELECT body FROM message_text WHERE blob_key = ?", (key,)) or ""
    headers = [(r[0], r[1]) for r in txn.query("SELECT name, value FROM message_headers WHERE blob_key = ?"
                                               " ORDER BY position", (key,))]
    row = txn.query_one("SELECT subject, reply, from_mbox, to_mbox, cc_mbox, display_from, display_to, message_id,"
                        " refs FROM message_sort_keys WHERE blob_key = ?", (key,))
    keys: SortKeys | None
    if row is not None:
        keys = SortKeys(row[0], bool(row[1]), *row[2:])
    else:
        try:
            keys = keys_of_json(parsed_json)
        except (ValueError, KeyError, TypeError, IndexError):
            keys = None
    sealed.store_content(txn, uk, key, text, headers, keys)


def _reseal_content(txn: Txn, keyring: Keyring, limit: int) -> int:
    if limit <= 0:
        return 0
    rows = txn.query(f"SELECT c.id, c.user_id, c.blob_key, c.body, c.headers, c.sort FROM mail_content c"
                     f" WHERE c.kv < {active_version_sql('c.user_id')} LIMIT ?", (int(limit),))
    for content_id, user_id, key, *values in rows:
        sealed.reseal_content(txn, keyring.for_user_txn(txn, int(user_id)), int(content_id), key, values)
    return len(rows)


def fill_thread_keys(txn: Txn, keyring: Keyring, limit: int) -> int:
    """THREAD keys for up to ``limit`` contents that have none, from their sealed sort keys."""
    if limit <= 0:
        return 0
    rows = txn.query("SELECT c.id, c.user_id, c.blob_key, c.sort" + threadkeys.MISSING + " LIMIT ?", (int(limit),))
    for content_id, user_id, key, value in rows:
        uk = keyring.for_user_txn(txn, int(user_id))
        threadkeys.store(txn, int(content_id), uk, sealed.sort_keys(sealed.open_content(uk, "sort", key, value)))
    return len(rows)


def _drop_plain(txn: Txn, limit: int) -> int:
    done = 0
    for table in PLAIN_TABLES:
        keys: list[Any] = [r[0] for r in txn.query(f"SELECT DISTINCT blob_key FROM {table} LIMIT ?",
                                                   (int(limit - done),))]
        for key in keys:
            txn.execute(f"DELETE FROM {table} WHERE blob_key = ?", (key,))
            done += txn.rowcount
        if done >= limit:
            break
    return done
