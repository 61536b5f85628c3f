"""Conversations and membership (transaction functions; no protocol code here).

A conversation is ``direct`` (exactly two people, or one for a note-to-self; unique per pair and
encryption mode) or ``group`` (a title and any number of members). ``encrypted`` is fixed at
creation: E2E conversations carry only ciphertext envelopes, plaintext ones (bots,
integrations) carry a body and are marked ``encrypted: false`` everywhere they appear.
Someone who is not a member gets "not found", never "forbidden": existence is not disclosed.

At rest (issue 16) a title is sealed under its creator's key (``key_user``, kept when
``created_by`` is set NULL), a plaintext conversation's message bodies and every message's
attachment list under the sender's (:mod:`tau.messenger.messages`). Who talks to whom (members,
routing) stays readable.
"""

from __future__ import annotations

from typing import Any

from tau.atrest.keyring import UserKey
from tau.atrest.sealed import SealedTable, key, key_if_user, open_or
from tau.auth import accounts
from tau.messenger.errors import MessengerError
from tau.storage.database import Txn, placeholders

MAX_MEMBERS = 1000
MAX_TITLE = 200


def user_ids(txn: Txn, addresses: list[str]) -> dict[str, int]:
    """Enabled local users among ``addresses`` (already normalised), address → id."""
    return accounts.enabled_user_ids(txn, addresses)


def _conversation(txn: Txn, conv_id: int) -> dict[str, Any] | None:
    row = txn.query_one("SELECT id, kind, encrypted, title, created_by, created_at, title_s, key_user"
                        " FROM msg_conversations WHERE id = ?", (conv_id,))
    if row is None:
        return None
    members = txn.query("SELECT u.address, m.role FROM msg_members m JOIN users u ON u.id = m.user_id"
                        " WHERE m.conversation_id = ? ORDER BY u.address", (conv_id,))
    return {"id": str(row[0]), "kind": row[1], "encrypted": bool(row[2]),
            "title": title_of(txn, conv_id, row[3], row[6], row[7]),
            "members": [m[0] for m in members], "admins": [m[0] for m in members if m[1] == "admin"],
            "created_at_ms": int(row[5])}


def title_of(txn: Txn, conv_id: int, title: str, title_s: Any, key_user: int | None) -> str:
    """A conversation's title from its row (sealed; plaintext from before; '' once its key is shredded)."""
    return open_or(key_if_user(txn, key_user) if title_s is not None else None, _title_ctx(conv_id), title_s,
                   title)


def _title_ctx(conv_id: int) -> str:
    return f"msg_conversations.title|{conv_id}"


def _set_title(txn: Txn, conv_id: int, title: str, owner: int | None = None) -> None:
    """Seal ``title`` under the key of the conversation's ``key_user`` (``owner`` when it has none yet)."""
    if owner is None:
        owner = txn.scalar("SELECT key_user FROM msg_conversations WHERE id = ?", (conv_id,))
    k = key_if_user(txn, owner) if owner is not None else None
    if k is None:  # callers pass a user who exists (the acting member once the creator is gone)
        return
    txn.execute("UPDATE msg_conversations SET title = '', title_s = ?, key_user = ?, kv = ? WHERE id = ?",
                (k.seal(_title_ctx(conv_id), title), owner, k.version, conv_id))


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
    direct = f"{low}|{high}|{'e' if encrypted else 'p'}"
    row = txn.query_one("SELECT id FROM msg_conversations WHERE direct_key = ?", (direct,))
    if row is not None:
        return int(row[0]), False
    # two first messages at once: the loser's insert does nothing and it reads the winner's row
    created = txn.scalar("INSERT INTO msg_conversations (kind, encrypted, title, direct_key, created_by,"
                         " created_at, key_user, kv) VALUES ('direct', ?, '', ?, ?, ?, ?, ?)"
                         " ON CONFLICT (direct_key) DO NOTHING RETURNING id",
                         (int(encrypted), direct, me, now_ms, me, _key(txn, me).version))
    if created is None:
        return int(txn.scalar("SELECT id FROM msg_conversations WHERE direct_key = ?", (direct,))), False
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
                             " created_at, key_user) VALUES ('group', ?, '', NULL, ?, ?, ?) RETURNING id",
                             (int(encrypted), creator, now_ms, creator)))
    _set_title(txn, conv_id, title[:MAX_TITLE], creator)
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
        owner = txn.scalar("SELECT key_user FROM msg_conversations WHERE id = ?", (conv_id,))
        _set_title(txn, conv_id, title[:MAX_TITLE], owner if key_if_user(txn, owner) is not None else actor)
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


def _key(txn: Txn, user_id: int) -> UserKey:
    return key(txn, user_id)


# -- encryption at rest of rows written before it (or under a retired key) -----------------------
def _convert_conversation(txn: Txn, k: UserKey, row: Any) -> None:
    _owner, conv_id, title, title_s = row
    value = title if title_s is None else k.open_text(_title_ctx(conv_id), title_s)
    txn.execute("UPDATE msg_conversations SET title = '', title_s = ?, kv = ? WHERE id = ?",
                (k.seal(_title_ctx(conv_id), value), k.version, conv_id))


def _convert_message(txn: Txn, k: UserKey, row: Any) -> None:
    _owner, msg_id, conv_id, created, body, attachments, body_s, attachments_s = row
    ctx = f"msg_messages|{conv_id}|{_owner}|{created}"
    if body_s is not None:
        body = k.open_text(ctx + "|body", body_s)
    if attachments_s is not None:
        attachments = k.open_text(ctx + "|attachments", attachments_s)
    txn.execute("UPDATE msg_messages SET body = ?, attachments = NULL, body_s = ?, attachments_s = ?, kv = ?"
                " WHERE id = ?", (None if body is None else "", None if body is None else k.seal(ctx + "|body", body),
                                  k.seal(ctx + "|attachments", attachments) if attachments else None, k.version,
                                  msg_id))


def atrest_tables() -> list[SealedTable]:
    """Rows whose key user is gone hold nothing readable any more: not pending."""
    return [SealedTable("msg_conversations", "msg_conversations", "t.key_user", "t.id, t.title, t.title_s",
                        _convert_conversation, where="t.key_user IN (SELECT id FROM users)"),
            SealedTable("msg_messages", "msg_messages", "t.key_user",
                        "t.id, t.conversation_id, t.created_at, t.body, t.attachments, t.body_s, t.attachments_s",
                        _convert_message, where="t.key_user IN (SELECT id FROM users)")]
