"""SQL of chat attachments (``msg_attachments``): opaque encrypted blobs, each bound at upload to
one conversation whose current members may fetch it. Owns the table; the blob is in the blob store."""

from __future__ import annotations

from typing import Any

from tau.storage.database import Txn


def used_bytes(txn: Txn, owner_id: int) -> int:
    """Bytes of chat attachments ``owner_id`` uploaded (what counts against their quota)."""
    return int(txn.scalar("SELECT COALESCE(SUM(size), 0) FROM msg_attachments WHERE owner_id = ?", (owner_id,)) or 0)


def add(txn: Txn, attachment_id: str, owner_id: int, conv_id: int, blob_key: str, size: int, now_ms: int) -> None:
    txn.execute("INSERT INTO msg_attachments (id, owner_id, conversation_id, blob_key, size, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (attachment_id, owner_id, conv_id, blob_key, size, now_ms))


def readable(txn: Txn, attachment_id: str, user_id: int) -> dict[str, Any] | None:
    """The attachment if ``user_id`` is a member of its conversation (else None: as if absent)."""
    row = txn.query_one("SELECT a.blob_key, a.size, a.conversation_id FROM msg_attachments a"
                        " JOIN msg_members m ON m.conversation_id = a.conversation_id AND m.user_id = ?"
                        " WHERE a.id = ?", (user_id, attachment_id))
    if row is None:
        return None
    return {"blob_key": row[0], "size": int(row[1]), "conversation": str(row[2])}


def delete_owned(txn: Txn, attachment_id: str, owner_id: int) -> bool:
    """Drop an upload of ``owner_id``'s (its blob becomes an orphan the sweeper deletes)."""
    row = txn.query_one("DELETE FROM msg_attachments WHERE id = ? AND owner_id = ? RETURNING id",
                        (attachment_id, owner_id))
    return row is not None
