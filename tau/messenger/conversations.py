"""Conversations and membership (transaction functions; no protocol code here).

A conversation is ``direct`` (exactly two people, or one for a note-to-self; unique per pair and
encryption mode) or ``group`` (a title and any number of members). ``encrypted`` is fixed at
creation: E2E conversations carry only ciphertext envelopes, plaintext ones (bots,
integrations) carry a body and are marked ``encrypted: false`` everywhere they appear.
Someone who is not a member gets "not found", never "forbidden": existence is not disclosed.
"""

from __future__ import annotations

from typing import Any

from tau.auth import accounts
from tau.messenger.errors import MessengerError
from tau.storage.database import Txn, placeholders

MAX_MEMBERS = 1000
MAX_TITLE = 200


def user_ids(txn: Txn, addresses: list[str]) -> dict[str, int]:
    """Enabled local users among ``addresses`` (already normalised), address → id."""
    return accounts.enabled_user_ids(txn, addresses)


def _conversation(txn: Txn, conv_id: int) -> dict[str, Any] | None:
    row = txn.query_one("SELECT id, kind, encrypted, title, created_by, created_at FROM msg_conversations"
                        " WHERE id = ?", (conv_id,))
    if row is None:
        return None
    members = txn.query("SELECT u.address, m.role FROM msg_members m JOIN users u ON u.id = m.user_id"
                        " WHERE m.conversation_id = ? ORDER BY u.address", (conv_id,))
    return {"id": str(row[0]), "kind": row[1], "encrypted": bool(row[2]), "title": row[3],
            "members": [m[0] for m in members], "admins": [m[0] for m in members if m[1] == "admin"],
            "created_at_ms": int(row[5])}


def is_member(txn: Txn, conv_id: int, user_id: int) -> bool:
    return txn.query_one("SELECT 1 FROM msg_members WHERE conversation_id = ? AND user_id = ?",
                         (conv_id, user_id)) is not None


def get_for_member(txn: Txn, conv_id: int, user_id: int) -> dict[str, Any]:
    if not is_member(txn, conv_id, user_id):
        raise MessengerError(404, "conversation_not_found", "no such conversation")
    conv = _conversation(txn, conv_id)
    assert conv is not None
    return conv


def find_direct(txn: Txn, me: int, other: int, encrypted: bool) -> int | None:
    """The direct conversation between two users, if it exists."""
    low, high = sorted((me, other))
    found = txn.scalar("SELECT id FROM msg_conversations WHERE direct_key = ?",
                       (f"{low}|{high}|{'e' if encrypted else 'p'}",))
    return None if found is None else int(found)


def find_or_create_direct(txn: Txn, me: int, other: int, encrypted: bool, now_ms: int) -> tuple[int, bool]:
    """The direct conversation between two users (created on first use); (id, created)."""
    low, high = sorted((me, other))
    key = f"{low}|{high}|{'e' if encrypted else 'p'}"
    row = txn.query_one("SELECT id FROM msg_conversations WHERE direct_key = ?", (key,))
    if row is not None:
        return int(row[0]), False
    # two first messages at once: the loser's insert does nothing and it reads the winner's row
    created = txn.scalar("INSERT INTO msg_conversations (kind, encrypted, title, direct_key, created_by,"
                         " created_at) VALUES ('direct', ?, '', ?, ?, ?) ON CONFLICT (direct_key) DO NOTHING"
                         " RETURNING id", (int(encrypted), key, me, now_ms))
    if created is None:
        return int(txn.scalar("SELECT id FROM msg_conversations WHERE direct_key = ?", (key,))), False
    conv_id = int(created)
    for uid in sorted({me, other}):
        txn.execute("INSERT INTO msg_members (conversation_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)",
                    (conv_id, uid, now_ms))
    return conv_id, True


def create_group(txn: Txn, creator: int, members: list[int], title: str, encrypted: bool, now_ms: int) -> int:
    ids = sorted(set(members) | {creator})
    if len(ids) > MAX_MEMBERS:
        raise MessengerError(400, "too_many_members", f"a conversation has at most {MAX_MEMBERS} members")
    conv_id = int(txn.scalar("INSERT INTO msg_conversations (kind, encrypted, title, direct_key, created_by,"
                             " created_at) VALUES ('group', ?, ?, NULL, ?, ?) RETURNING id",
                             (int(encrypted), title[:MAX_TITLE], creator, now_ms)))
    for uid in ids:
        txn.execute("INSERT INTO msg_members (conversation_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
                    (conv_id, uid, "admin" if uid == creator else "member", now_ms))
    return conv_id


def change_members(txn: Txn, conv_id: int, actor: int, add: list[int], remove: list[int],
                   title: str | None, now_ms: int) -> tuple[dict[str, Any], list[str]]:
    """Add/remove members of a group. Members may add and leave; admins may also remove others.

    Returns the conversation after the change and the addresses of everyone who was a member
    before or after it (all of them are told).
    """
    conv = get_for_member(txn, conv_id, actor)
    if conv["kind"] != "group":
        raise MessengerError(400, "not_a_group", "the members of a direct conversation cannot change")
    role = txn.scalar("SELECT role FROM msg_members WHERE conversation_id = ? AND user_id = ?", (conv_id, actor))
    if any(uid != actor for uid in remove) and role != "admin":
        raise MessengerError(403, "not_admin", "only a group admin may remove other members")
    before = set(conv["members"])
    for uid in add:
        if not is_member(txn, conv_id, uid):
            txn.execute("INSERT INTO msg_members (conversation_id, user_id, role, joined_at)"
                        " VALUES (?, ?, 'member', ?)", (conv_id, uid, now_ms))
    for uid in remove:
        txn.execute("DELETE FROM msg_members WHERE conversation_id = ? AND user_id = ?", (conv_id, uid))
        txn.execute("DELETE FROM msg_queue WHERE user_id = ? AND message_id IN"
                    " (SELECT id FROM msg_messages WHERE conversation_id = ?)", (uid, conv_id))
    if title is not None:
        txn.execute("UPDATE msg_conversations SET title = ? WHERE id = ?", (title[:MAX_TITLE], conv_id))
    count = int(txn.scalar("SELECT COUNT(*) FROM msg_members WHERE conversation_id = ?", (conv_id,)))
    if count > MAX_MEMBERS:
        raise MessengerError(400, "too_many_members", f"a conversation has at most {MAX_MEMBERS} members")
    if count and not txn.scalar("SELECT COUNT(*) FROM msg_members WHERE conversation_id = ? AND role = 'admin'",
                                (conv_id,)):
        # the last admin left: the longest-standing member inherits the role
        first = txn.scalar("SELECT user_id FROM msg_members WHERE conversation_id = ?"
                           " ORDER BY joined_at, user_id LIMIT 1", (conv_id,))
        txn.execute("UPDATE msg_members SET role = 'admin' WHERE conversation_id = ? AND user_id = ?",
                    (conv_id, first))
    after = _conversation(txn, conv_id)
    assert after is not None
    return after, sorted(before | set(after["members"]))


def list_for_member(txn: Txn, user_id: int, after_id: int, limit: int) -> list[dict[str, Any]]:
    rows = txn.query("SELECT c.id FROM msg_conversations c JOIN msg_members m ON m.conversation_id = c.id"
                     " WHERE m.user_id = ? AND c.id > ? ORDER BY c.id LIMIT ?", (user_id, after_id, limit))
    return [c for c in (_conversation(txn, int(r[0])) for r in rows) if c is not None]


def member_addresses(txn: Txn, conv_id: int) -> list[str]:
    return [r[0] for r in txn.query("SELECT u.address FROM msg_members m JOIN users u ON u.id = m.user_id"
                                    " WHERE m.conversation_id = ? ORDER BY u.address", (conv_id,))]


def contacts(txn: Txn, user_id: int) -> list[str]:
    """Everyone who shares a conversation with the user: the audience of their presence."""
    rows = txn.query("SELECT DISTINCT u.address FROM msg_members a JOIN msg_members b"
                     " ON a.conversation_id = b.conversation_id JOIN users u ON u.id = b.user_id"
                     " WHERE a.user_id = ? AND b.user_id <> ?", (user_id, user_id))
    return sorted(r[0] for r in rows)


def shares_conversation(txn: Txn, user_id: int, other_ids: list[int]) -> set[int]:
    """Which of ``other_ids`` share a conversation with the user (presence visibility)."""
    if not other_ids:
        return set()
    marks = placeholders(len(other_ids))
    rows = txn.query("SELECT DISTINCT b.user_id FROM msg_members a JOIN msg_members b"
                     " ON a.conversation_id = b.conversation_id"
                     f" WHERE a.user_id = ? AND b.user_id IN ({marks})", (user_id, *other_ids))
    return {int(r[0]) for r in rows}
