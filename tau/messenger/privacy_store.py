"""The messenger rows of one user, for privacy export and erasure (:mod:`tau.messenger.privacy`)."""

from __future__ import annotations

from typing import Any

from tau.messenger.conversations import title_of
from tau.storage.database import Txn


def conversations(txn: Txn, user_id: int) -> list[dict[str, Any]]:
    """Metadata of the user's conversations: members, message ids and times (no ciphertext)."""
    out = []
    for cid, kind, stored, created, sealed, key_user in txn.query(
            "SELECT c.id, c.kind, c.title, c.created_at, c.title_s, c.key_user FROM msg_conversations c"
            " JOIN msg_members m"
            " ON m.conversation_id = c.id WHERE m.user_id = ? ORDER BY c.id", (user_id,)):
        members = [r[0] for r in txn.query("SELECT u.address FROM msg_members m JOIN users u ON u.id = m.user_id"
                                           " WHERE m.conversation_id = ? ORDER BY u.address", (cid,))]
        messages = [{"id": r[0], "created_at": r[1], "from_me": r[2] == user_id}
                    for r in txn.query("SELECT id, created_at, sender_id FROM msg_messages WHERE conversation_id = ?"
                                       " ORDER BY id", (cid,))]
        title = title_of(txn, int(cid), stored, sealed, key_user)
        out.append({"id": cid, "kind": kind, "title": title, "created_at": created, "members": members,
                    "messages": messages})
    return out


def purge_user(txn: Txn, user_id: int) -> None:
    """The messages the user sent, the conversations only they were in, and their name as creator
    (``ON DELETE SET NULL`` would keep the messages)."""
    txn.execute("DELETE FROM msg_messages WHERE sender_id = ?", (user_id,))
    txn.execute("DELETE FROM msg_conversations WHERE created_by = ? AND NOT EXISTS (SELECT 1 FROM msg_members m"
                " WHERE m.conversation_id = msg_conversations.id AND m.user_id <> ?)", (user_id, user_id))
    txn.execute("UPDATE msg_conversations SET created_by = NULL WHERE created_by = ?", (user_id,))
