"""The chat digest in the database (transaction functions): who may need one, what they have not
read, and the atomic claim that makes one node — and one digest — cover each message.

"Read" is what the messenger knows: a ``read`` receipt from the user for that message or a later
one in the same conversation, or a message the user sent there afterwards (answering means
having seen it). Delivered-but-unreceipted messages count as unread, as in Matrix/Synapse's
email notifier: a socket that received a message is no proof a person saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau.messenger.conversations import title_of
from tau.storage.database import Txn

LOOKBACK_MS = 7 * 86400 * 1000     # older messages are not summarised (nor scanned every round)
MAX_MESSAGES = 2000                # per user and round; the rest waits for the next round


class Lost(Exception):
    """Another node (or round) moved the watermark first: this digest is not ours to send."""


@dataclass(frozen=True)
class Unread:
    id: int
    conversation: int
    created_ms: int
    sender: str | None
    kind: str          # direct | group
    title: str


def candidates(txn: Txn, since_ms: int, cutoff_ms: int, quiet_since_ms: int, limit: int) -> list[tuple[int, str]]:
    """(id, address) of enabled users with a message from someone else, between ``since_ms`` and
    ``cutoff_ms``, above their watermark, and no digest since ``quiet_since_ms``."""
    rows = txn.query(
        "SELECT DISTINCT u.id, u.address FROM msg_messages m"
        " JOIN msg_members mm ON mm.conversation_id = m.conversation_id"
        " JOIN users u ON u.id = mm.user_id"
        " LEFT JOIN flow_chat_digest d ON d.user_id = mm.user_id"
        " WHERE m.created_at >= ? AND m.created_at <= ? AND m.created_at >= mm.joined_at"
        " AND (m.sender_id IS NULL OR m.sender_id <> mm.user_id)"
        " AND m.id > COALESCE(d.last_message_id, 0) AND COALESCE(d.sent_at, 0) <= ? AND u.disabled = 0"
        " ORDER BY u.id LIMIT ?", (since_ms, cutoff_ms, quiet_since_ms, limit))
    return [(int(r[0]), str(r[1])) for r in rows]


def watermark(txn: Txn, user_id: int) -> int:
    """The user's watermark, creating the row (at 0) on first use."""
    txn.execute("INSERT INTO flow_chat_digest (user_id, last_message_id, sent_at) VALUES (?, 0, 0)"
                " ON CONFLICT (user_id) DO NOTHING", (user_id,))
    return int(txn.scalar("SELECT last_message_id FROM flow_chat_digest WHERE user_id = ?", (user_id,)) or 0)


def _seen(txn: Txn, user_id: int, after_id: int) -> dict[int, int]:
    """Conversation → highest message id the user has read or answered."""
    seen: dict[int, int] = {}
    for conv, top in txn.query(
            "SELECT m.conversation_id, MAX(m.id) FROM msg_receipts r JOIN msg_messages m ON m.id = r.message_id"
            " WHERE r.user_id = ? AND r.kind = 'read' AND r.message_id > ? GROUP BY m.conversation_id",
            (user_id, after_id)):
        seen[int(conv)] = max(seen.get(int(conv), 0), int(top))
    for conv, top in txn.query(
            "SELECT conversation_id, MAX(id) FROM msg_messages WHERE sender_id = ? AND id > ? GROUP BY conversation_id",
            (user_id, after_id)):
        seen[int(conv)] = max(seen.get(int(conv), 0), int(top))
    return seen


def unread(txn: Txn, user_id: int, after_id: int, since_ms: int, cutoff_ms: int) -> tuple[list[Unread], int]:
    """(unread messages old enough to summarise, the watermark that may be written).

    Everything up to the returned watermark is either read or in the list, so writing it never
    skips a message that should be summarised; it stops short of the first unread message that
    is younger than ``cutoff_ms`` (that one is for a later digest).
    """
    rows = txn.query(
        "SELECT m.id, m.conversation_id, m.created_at, s.address, c.kind, c.title, c.title_s, c.key_user"
        " FROM msg_messages m"
        " JOIN msg_members mm ON mm.conversation_id = m.conversation_id AND mm.user_id = ?"
        " JOIN msg_conversations c ON c.id = m.conversation_id"
        " LEFT JOIN users s ON s.id = m.sender_id"
        " WHERE m.id > ? AND m.created_at >= ? AND m.created_at >= mm.joined_at"
        " AND (m.sender_id IS NULL OR m.sender_id <> ?) ORDER BY m.id LIMIT ?",
        (user_id, after_id, since_ms, user_id, MAX_MESSAGES))
    seen = _seen(txn, user_id, after_id) if rows else {}
    found: list[Unread] = []
    mark = after_id
    for mid, conv, created, sender, kind, stored, sealed, key_user in rows:
        mid, conv, created = int(mid), int(conv), int(created)
        if mid > seen.get(conv, 0):
            if created > cutoff_ms:
                break
            title = title_of(txn, conv, stored or "", sealed, key_user)
            found.append(Unread(mid, conv, created, sender, str(kind), title))
        mark = mid
    return found, mark


def advance(txn: Txn, user_id: int, old: int, new: int, sent_at_ms: int | None) -> None:
    """Move the watermark from ``old`` to ``new`` (and stamp a digest), or raise Lost.

    The ``WHERE last_message_id = old`` is the claim: of several nodes that read the same
    watermark, the first to commit wins and the others update no row (PostgreSQL re-checks the
    condition after the winner's row lock is released; SQLite has one writer).
    """
    if sent_at_ms is None:
        txn.execute("UPDATE flow_chat_digest SET last_message_id = ? WHERE user_id = ? AND last_message_id = ?",
                    (new, user_id, old))
    else:
        txn.execute("UPDATE flow_chat_digest SET last_message_id = ?, sent_at = ? WHERE user_id = ?"
                    " AND last_message_id = ?", (new, sent_at_ms, user_id, old))
    if txn.rowcount != 1:
        raise Lost(f"watermark of user {user_id} moved")


def claim_and_deliver(txn: Txn, ctx: Any, user_id: int, address: str, old: int, new: int, now_ms: int,
                      key: str, size: int, fields: Any) -> None:
    """The claim and the INBOX copy in one transaction: a digest is delivered exactly when the
    watermark moves, never twice and never lost between the two."""
    from tau.mail.store import messages

    advance(txn, user_id, old, new, now_ms)
    messages.deliver(txn, ctx, [address], key, size, fields, "INBOX", (), None, None)
