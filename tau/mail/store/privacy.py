"""The mail rows of one user, for privacy export and erasure (:mod:`tau.mail.privacy`)."""

from __future__ import annotations

from typing import Any

from tau.mail.store import boxnames, purge, queue
from tau.mail.store.blobrefs import drop_refs
from tau.storage.database import Txn


def mailboxes(txn: Txn, keyring: Any, user_id: int) -> list[tuple[int, str]]:
    """(id, name) of every mailbox of the user, by name (names are sealed: decrypted here)."""
    rows = txn.query("SELECT id, name, kv, sealed_name FROM mailboxes WHERE user_id = ?", (user_id,))
    uk = keyring.for_user_txn(txn, user_id) if any(int(r[2]) for r in rows) else None
    return sorted(((int(r[0]), boxnames.name_of(uk, r[1], int(r[2]), r[3])) for r in rows), key=lambda b: b[1])


def message_blobs(txn: Txn, mailbox_id: int) -> list[tuple[str, int]]:
    """(blob key, internal date) of every message in the mailbox, by UID."""
    return [(r[0], int(r[1])) for r in txn.query(
        "SELECT blob_key, internal_date FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))]


def purge_user(txn: Txn, user_id: int) -> list[str]:
    """Drop the references of the user's messages and pending outbound rows and delete those rows
    (``ON DELETE SET NULL`` would keep the queue's); returns the keys left unreferenced."""
    keys = [r[0] for r in txn.query("SELECT m.blob_key FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                                    " WHERE b.user_id = ?", (user_id,))]
    keys += purge.user_blob_keys(txn, user_id)  # expunged, waiting for their purge
    keys += queue.pending_blob_keys(txn, user_id)
    orphans = drop_refs(txn, keys) if keys else []
    queue.delete_user_rows(txn, user_id)
    return orphans
