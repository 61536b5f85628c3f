"""Subscriptions of names that have no mailbox any more (RFC 3501 §6.3.6-9, RFC 5258 §3).

A mailbox's own subscription is its ``subscribed`` column. When a subscribed mailbox is deleted
its name is kept here, so LSUB and ``LIST (SUBSCRIBED)`` still show it (``\\NonExistent``) until
the client unsubscribes it; creating a mailbox of that name again makes it subscribed.
"""

from __future__ import annotations

from tau.atrest.keyring import UserKey
from tau.mail.store import boxnames
from tau.mail.store.context import StoreContext
from tau.mail.store.quota import find_account
from tau.storage.database import Txn

CHUNK = 500
_TABLE = "mail_lost_subscriptions"


def keep(txn: Txn, uk: UserKey, name: str) -> None:
    """``name`` was deleted while subscribed: its subscription stays."""
    txn.execute("INSERT INTO mail_lost_subscriptions (user_id, name, kv, sealed_name) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, name) DO NOTHING",
                (uk.user_id, boxnames.lookup(uk, name), uk.version, boxnames.seal(uk, name, _TABLE)))


def forget(txn: Txn, uk: UserKey, name: str) -> bool:
    """Drop the lost subscription of ``name``; whether there was one."""
    row = txn.query_one("DELETE FROM mail_lost_subscriptions WHERE user_id = ? AND name = ? RETURNING name",
                        (uk.user_id, boxnames.lookup(uk, name)))
    return row is not None


def adopt(txn: Txn, uk: UserKey, mailbox_id: int, name: str) -> None:
    """A mailbox called ``name`` exists again: a lost subscription of the name becomes its own."""
    if forget(txn, uk, name):
        txn.execute("UPDATE mailboxes SET subscribed = 1 WHERE id = ?", (mailbox_id,))


def adopt_many(txn: Txn, uk: UserKey, boxes: dict[str, int]) -> None:
    """:func:`adopt` for several mailboxes (``{name: mailbox_id}``, RENAME with children)."""
    by_lookup = {boxnames.lookup(uk, name): mailbox_id for name, mailbox_id in boxes.items()}
    names = list(by_lookup)
    for start in range(0, len(names), CHUNK):
        sql, params = txn.in_list(names[start:start + CHUNK])
        rows = txn.query(f"DELETE FROM mail_lost_subscriptions WHERE user_id = ? AND name IN {sql} RETURNING name",
                         [uk.user_id, *params])
        if rows:
            ids_sql, ids = txn.in_list(by_lookup[r[0]] for r in rows)
            txn.execute(f"UPDATE mailboxes SET subscribed = 1 WHERE id IN {ids_sql}", ids)


def lost(txn: Txn, ctx: StoreContext, user: str) -> list[str]:
    """Subscribed names without a mailbox, sorted (after decrypting)."""
    acct = find_account(txn, user, ctx.default_quota)
    if acct is None:
        return []
    rows = txn.query("SELECT name, kv, sealed_name FROM mail_lost_subscriptions WHERE user_id = ?", (acct.id,))
    uk = ctx.keyring.for_user_txn(txn, acct.id) if any(int(r[1]) for r in rows) else None
    return sorted(boxnames.name_of(uk, r[0], int(r[1]), r[2], _TABLE) for r in rows)
