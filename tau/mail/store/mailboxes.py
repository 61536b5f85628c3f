"""Mailbox transaction functions: lookups scoped by user, create/delete/rename/subscribe.

A mailbox is reached by name only through its owner's address (``user_id`` comes from the
users table in the same query), so no name a client can type resolves into another user's
tree. Functions that take a ``mailbox_id`` trust that it came from such a lookup; when in doubt
(or for defence in depth) pass the user and they check ownership with :func:`require_owned`.
Lock order, to keep PostgreSQL free of deadlocks: mailboxes (ascending id), then mail_usage.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tau.atrest.keyring import UserKey
from tau.mail.store import boxnames, subscriptions
from tau.mail.store.api import (
    DEFAULT_MAILBOXES,
    DELIMITER,
    InvalidMailboxName,
    MailboxExists,
    MailboxInfo,
    MailboxInUse,
    MailboxNotFound,
    SpecialUseTaken,
)
from tau.mail.store.blobrefs import drop_refs
from tau.mail.store.context import StoreContext
from tau.mail.store.names import INBOX, normalize_mailbox_name, parents
from tau.mail.store.quota import Account, charge, ensure_usage, find_account, require_account
from tau.storage.database import Txn

#: special uses more than one mailbox may have (RFC 6154 section 3, CREATE-SPECIAL-USE): archive folders
#: by year, say. The others name the one box the server files into (Sent, Drafts, Trash, Junk).
SHAREABLE_USES = ("\\Archive",)
_COLS = ("m.id, m.name, m.special_use, m.uidvalidity, m.uidnext, m.highestmodseq, m.subscribed,"
         " m.messages, m.unseen, m.size, m.kv, m.sealed_name")
# sealed rows name their parent's lookup hash; plaintext rows (from before sealing) by prefix
_HAS_CHILDREN = ("EXISTS (SELECT 1 FROM mailboxes c WHERE c.user_id = m.user_id AND (c.parent = m.name OR"
                 " (m.kv = 0 AND c.kv = 0 AND substr(c.name, 1, length(m.name) + 1) = m.name || '/')))")
#: a lookup by name matches the lookup hash, or the plaintext name of a row not sealed yet
_BY_NAME = "(m.name = ? OR (m.kv = 0 AND m.name = ?))"


def _info(row: tuple[Any, ...], uk: UserKey | None, has_children: bool = False) -> MailboxInfo:
    return MailboxInfo(int(row[0]), boxnames.name_of(uk, row[1], int(row[10]), row[11]), row[2], int(row[3]),
                       int(row[4]), int(row[5]), bool(row[6]), int(row[7]), int(row[8]), int(row[9]), has_children)


def _key(txn: Txn, ctx: StoreContext, user_id: int) -> UserKey:
    return ctx.keyring.for_user_txn(txn, int(user_id))


def _by_name(uk: UserKey, name: str) -> tuple[str, str]:
    return boxnames.lookup(uk, name), name


def _for_update(txn: Txn) -> str:
    """Row lock on PostgreSQL; SQLite transactions already hold the database write lock."""
    return " FOR UPDATE OF m" if txn.engine.name == "postgres" else ""


# -- lookups -----------------------------------------------------------------------------------

def get_mailbox(txn: Txn, ctx: StoreContext, user: str, name: str) -> MailboxInfo | None:
    """``user``'s mailbox ``name``, or None (also for invalid names and unknown users)."""
    acct = find_account(txn, user, ctx.default_quota)
    if acct is None:
        return None
    try:
        name = normalize_mailbox_name(name)
    except InvalidMailboxName:
        return None
    uk = _key(txn, ctx, acct.id)
    row = txn.query_one(f"SELECT {_COLS}, {_HAS_CHILDREN} FROM mailboxes m WHERE m.user_id = ? AND {_BY_NAME}",
                        (acct.id, *_by_name(uk, name)))
    return _info(row, uk, bool(row[12])) if row else None


def get_mailbox_by_id(txn: Txn, ctx: StoreContext, user: str, mailbox_id: int) -> MailboxInfo | None:
    """The mailbox with this id if ``user`` owns it (IMAP re-reads its selected box by id)."""
    acct = find_account(txn, user, ctx.default_quota)
    if acct is None:
        return None
    row = txn.query_one(f"SELECT {_COLS}, {_HAS_CHILDREN} FROM mailboxes m WHERE m.user_id = ? AND m.id = ?",
                        (acct.id, int(mailbox_id)))
    return _info(row, _key(txn, ctx, acct.id) if row and int(row[10]) else None, bool(row[12])) if row else None


def owner(txn: Txn, mailbox_id: int) -> str | None:
    """The address owning ``mailbox_id``, or None."""
    return txn.scalar("SELECT u.address FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE m.id = ?",
                      (int(mailbox_id),))


def require_owned(txn: Txn, mailbox_id: int, user: str | None) -> None:
    """MailboxNotFound unless ``user`` (when given) owns ``mailbox_id``: the same answer as for
    a mailbox that does not exist, so probing ids reveals nothing."""
    if user is None:
        return
    found = owner(txn, mailbox_id)
    acct_ok = False
    if found is not None:
        from tau.auth.accounts import AccountError, normalize_address

        try:
            acct_ok = normalize_address(user) == found
        except (AccountError, AttributeError, TypeError):
            acct_ok = False
    if not acct_ok:
        raise MailboxNotFound("no such mailbox")


def lock_mailbox(txn: Txn, ctx: StoreContext, mailbox_id: int) -> tuple[int, int, str, int, int, int, str]:
    """(id, user_id, name, uidvalidity, uidnext, highestmodseq, owner address), row-locked."""
    row = txn.query_one("SELECT m.id, m.user_id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, u.address,"
                        " m.kv, m.sealed_name FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE m.id = ?"
                        + _for_update(txn), (int(mailbox_id),))
    if row is None:
        raise MailboxNotFound("no such mailbox")
    uk = _key(txn, ctx, row[1]) if int(row[7]) else None
    return (int(row[0]), int(row[1]), boxnames.name_of(uk, row[2], int(row[7]), row[8]), int(row[3]), int(row[4]),
            int(row[5]), row[6])


def find_special(txn: Txn, ctx: StoreContext, acct: Account, special_use: str) -> MailboxInfo | None:
    """The user's mailbox with this RFC 6154 attribute, whatever it is called now."""
    row = txn.query_one(f"SELECT {_COLS} FROM mailboxes m WHERE m.user_id = ? AND m.special_use = ?"
                        " ORDER BY m.id LIMIT 1", (acct.id, special_use))
    return _info(row, _key(txn, ctx, acct.id)) if row else None


def find_box(txn: Txn, ctx: StoreContext, acct: Account, name: str, lock: bool = False) -> MailboxInfo | None:
    uk = _key(txn, ctx, acct.id)
    row = txn.query_one(f"SELECT {_COLS} FROM mailboxes m WHERE m.user_id = ? AND {_BY_NAME}"
                        + (_for_update(txn) if lock else ""), (acct.id, *_by_name(uk, name)))
    return _info(row, uk) if row else None


def list_mailboxes(txn: Txn, ctx: StoreContext, user: str) -> list[MailboxInfo]:
    """Every mailbox of ``user``: INBOX first, then by name; one query."""
    acct = find_account(txn, user, ctx.default_quota)
    if acct is None:
        return []
    rows = txn.query(f"SELECT {_COLS} FROM mailboxes m WHERE m.user_id = ?", (acct.id,))
    uk = _key(txn, ctx, acct.id) if any(int(r[10]) for r in rows) else None
    infos = [_info(r, uk) for r in rows]
    prefixes = {p for i in infos for p in parents(i.name)}
    infos = [dataclasses.replace(i, has_children=i.name in prefixes) for i in infos]
    return sorted(infos, key=lambda i: (i.name != INBOX, i.name))  # names are sealed: sorted here


# -- creation ----------------------------------------------------------------------------------

def _next_uidvalidity(txn: Txn, user_id: int) -> int:
    """Time-based and strictly increasing per user (RFC 3501 section 2.3.1.1)."""
    ensure_usage(txn, user_id)
    now = int(txn.now)
    row = txn.query_one("UPDATE mail_usage SET last_uidvalidity = CASE WHEN last_uidvalidity + 1 > ?"
                        " THEN last_uidvalidity + 1 ELSE ? END WHERE user_id = ? RETURNING last_uidvalidity",
                        (now, now, user_id))
    assert row is not None
    return int(row[0])


def insert_mailbox(txn: Txn, ctx: StoreContext, acct: Account, name: str, special_use: str | None = None,
                   subscribed: bool = False) -> int | None:
    """A new mailbox row; None if the name exists already (also under a concurrent create)."""
    uk = boxnames.seal_user(txn, _key(txn, ctx, acct.id))
    row = txn.query_one(
        "INSERT INTO mailboxes (user_id, name, special_use, uidvalidity, subscribed, created_at, kv, sealed_name,"
        " parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, name) DO NOTHING RETURNING id",
        (acct.id, boxnames.lookup(uk, name), special_use, _next_uidvalidity(txn, acct.id), int(subscribed),
         int(txn.now), uk.version, boxnames.seal(uk, name), boxnames.parent_lookup(uk, name)))
    return int(row[0]) if row else None


def _create_parents(txn: Txn, ctx: StoreContext, acct: Account, name: str) -> None:
    for parent in parents(name):
        insert_mailbox(txn, ctx, acct, parent)


def create_mailbox(txn: Txn, ctx: StoreContext, user: str, name: str, special_use: str | None = None) -> MailboxInfo:
    """CREATE (RFC 3501 section 6.3.3): missing parents are created too; one trailing "/" is the
    client declaring it will create children, and is dropped. ``special_use`` (RFC 6154 section 3)
    must not belong to another mailbox yet (SpecialUseTaken) unless it is one of SHAREABLE_USES."""
    acct = require_account(txn, user, ctx.default_quota)
    if isinstance(name, str) and name.endswith(DELIMITER) and not name.endswith(DELIMITER * 2):
        name = name[:-1]
    name = normalize_mailbox_name(name)
    if find_box(txn, ctx, acct, name) is not None:
        raise MailboxExists(f"mailbox {name} exists already")
    if special_use not in (None, *SHAREABLE_USES) and find_special(txn, ctx, acct, special_use) is not None:
        raise SpecialUseTaken(f"another mailbox is the {special_use} mailbox")
    _create_parents(txn, ctx, acct, name)
    mailbox_id = insert_mailbox(txn, ctx, acct, name, special_use)
    if mailbox_id is None:
        raise MailboxExists(f"mailbox {name} exists already")
    subscriptions.adopt(txn, _key(txn, ctx, acct.id), mailbox_id, name)
    ctx.notify(txn, acct.address, mailbox_id, name, "mailboxes", action="create")
    info = find_box(txn, ctx, acct, name)
    assert info is not None
    return info


def ensure_defaults(txn: Txn, ctx: StoreContext, user: str) -> Account:
    """INBOX, Sent, Drafts, Trash, Junk, Archive with RFC 6154 special-use; idempotent. A box that
    exists under a default name without a special-use gets it, unless another box has it; a
    special-use box the user renamed is not created again under its default name."""
    acct = require_account(txn, user, ctx.default_quota)
    ensure_usage(txn, acct.id)
    uk = boxnames.seal_user(txn, _key(txn, ctx, acct.id))
    rows = txn.query("SELECT name, special_use, kv, sealed_name FROM mailboxes WHERE user_id = ?", (acct.id,))
    existing = {boxnames.name_of(uk, r[0], int(r[2]), r[3]): r[1] for r in rows}
    uses = {r[1] for r in rows if r[1]}
    for name, use in DEFAULT_MAILBOXES:
        if name not in existing:
            if use in uses:  # renamed by the user ("Sent" → "Sent Items"): do not bring it back
                continue
            new_id = insert_mailbox(txn, ctx, acct, name, use, subscribed=True)
            if new_id is not None:
                ctx.notify(txn, acct.address, new_id, name, "mailboxes", action="create")
        elif use and existing[name] is None and use not in uses:
            txn.execute("UPDATE mailboxes SET special_use = ? WHERE user_id = ? AND name = ?",
                        (use, acct.id, boxnames.lookup(uk, name)))
    return acct


# -- delete, rename, subscribe -----------------------------------------------------------------

def _is_extra(txn: Txn, ctx: StoreContext, acct: Account, box: MailboxInfo) -> bool:
    """A box with a shareable special use that an older box has too."""
    if box.special_use not in SHAREABLE_USES:
        return False
    first = find_special(txn, ctx, acct, box.special_use)
    return first is not None and first.id != box.id


def delete_mailbox(txn: Txn, ctx: StoreContext, user: str, name: str) -> None:
    """DELETE (RFC 3501 section 6.3.4): its messages are expunged (quota and blobs released);
    children stay. INBOX and special-use mailboxes are refused (MailboxInUse), except a second
    mailbox with a shareable use (the first one created keeps it)."""
    acct = require_account(txn, user, ctx.default_quota)
    name = normalize_mailbox_name(name)
    box = find_box(txn, ctx, acct, name, lock=True)
    if box is None:
        raise MailboxNotFound(f"no mailbox {name}")
    if name == INBOX:
        raise MailboxInUse("INBOX cannot be deleted")
    if box.special_use and not _is_extra(txn, ctx, acct, box):
        raise MailboxInUse(f"{name} is the {box.special_use} mailbox and cannot be deleted")
    rows = txn.query("SELECT blob_key, size FROM messages WHERE mailbox_id = ?", (box.id,))
    if rows:
        charge(txn, acct, -sum(int(r[1]) for r in rows), -len(rows))
    # messages expunged earlier and still waiting for their purge (tau.mail.store.purge) go too
    pending = txn.query("DELETE FROM mail_purge_pending WHERE mailbox_id = ? RETURNING blob_key", (box.id,))
    gone = drop_refs(txn, [r[0] for r in rows] + [r[0] for r in pending])
    txn.execute("DELETE FROM messages WHERE mailbox_id = ?", (box.id,))
    txn.execute("DELETE FROM expunged WHERE mailbox_id = ?", (box.id,))
    txn.execute("DELETE FROM mailboxes WHERE id = ?", (box.id,))
    if box.subscribed:
        subscriptions.keep(txn, boxnames.seal_user(txn, _key(txn, ctx, acct.id)), name)
    ctx.collect_after(txn, gone)
    ctx.notify(txn, acct.address, box.id, name, "mailboxes", action="delete")


def rename_mailbox(txn: Txn, ctx: StoreContext, user: str, old: str, new: str) -> None:
    """RENAME (RFC 3501 section 6.3.5): children follow; missing parents of ``new`` are created.
    Renaming INBOX moves its messages into a new mailbox and leaves INBOX empty (children of
    INBOX stay where they are)."""
    acct = require_account(txn, user, ctx.default_quota)
    old, new = normalize_mailbox_name(old), normalize_mailbox_name(new)
    box = find_box(txn, ctx, acct, old, lock=True)
    if box is None:
        raise MailboxNotFound(f"no mailbox {old}")
    if new == old or find_box(txn, ctx, acct, new) is not None:
        raise MailboxExists(f"mailbox {new} exists already")
    if old == INBOX:
        _rename_inbox(txn, ctx, acct, box, new)
        return
    if new.startswith(old + DELIMITER):
        raise InvalidMailboxName(f"cannot move {old} into its own child {new}")
    prefix = old + DELIMITER
    uk = boxnames.seal_user(txn, _key(txn, ctx, acct.id))
    rows = [(int(r[0]), boxnames.name_of(uk, r[1], int(r[2]), r[3]))
            for r in txn.query("SELECT id, name, kv, sealed_name FROM mailboxes WHERE user_id = ?", (acct.id,))]
    moves = [(box.id, old, new)] + [(i, n, new + n[len(old):]) for i, n in rows if n.startswith(prefix)]
    for _, _, target in moves:
        if len(target) > 200:
            raise InvalidMailboxName(f"{target} would be longer than 200 characters")
        if target == INBOX or find_box(txn, ctx, acct, target) is not None:
            raise MailboxExists(f"mailbox {target} exists already")
    _create_parents(txn, ctx, acct, new)
    # two steps: a child's new name may be another moving box's old one (UNIQUE (user_id, name))
    txn.executemany("UPDATE mailboxes SET name = ? WHERE id = ?", [(f"moving-{i}", i) for i, _, _ in moves])
    txn.executemany("UPDATE mailboxes SET name = ?, sealed_name = ?, parent = ?, kv = ? WHERE id = ?",
                    [(boxnames.lookup(uk, t), boxnames.seal(uk, t), boxnames.parent_lookup(uk, t), uk.version, i)
                     for i, _, t in moves])
    subscriptions.adopt_many(txn, uk, {t: i for i, _, t in moves})
    for mailbox_id, before, after in moves:
        ctx.notify(txn, acct.address, mailbox_id, after, "mailboxes", action="rename", old=before)


def _rename_inbox(txn: Txn, ctx: StoreContext, acct: Account, inbox: MailboxInfo, new: str) -> None:
    _create_parents(txn, ctx, acct, new)
    new_id = insert_mailbox(txn, ctx, acct, new)
    if new_id is None:
        raise MailboxExists(f"mailbox {new} exists already")
    modseq = inbox.highestmodseq + 1
    uids = [int(r[0]) for r in txn.query("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid",
                                         (inbox.id,))]
    # UIDs stay: the new mailbox has its own UIDVALIDITY, and INBOX's uidnext never goes back
    txn.execute("INSERT INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, ? FROM messages"
                " WHERE mailbox_id = ?", (modseq, inbox.id))
    txn.execute("UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?", (new_id, inbox.id))
    txn.execute("INSERT INTO mailbox_keywords (mailbox_id, folded, keyword) SELECT ?, folded, keyword"
                " FROM mailbox_keywords WHERE mailbox_id = ?", (new_id, inbox.id))
    txn.execute("UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, messages = ?, unseen = ?, size = ?"
                " WHERE id = ?", (inbox.uidnext, modseq, inbox.messages, inbox.unseen, inbox.size, new_id))
    txn.execute("UPDATE mailboxes SET highestmodseq = ?, messages = 0, unseen = 0, size = 0 WHERE id = ?",
                (modseq, inbox.id))
    ctx.notify(txn, acct.address, new_id, new, "mailboxes", action="create")
    if uids:
        ctx.notify(txn, acct.address, inbox.id, INBOX, "expunge", uids, modseq)


def subscribe(txn: Txn, ctx: StoreContext, user: str, name: str, subscribed: bool) -> None:
    """SUBSCRIBE/UNSUBSCRIBE (RFC 3501 section 6.3.6-7) of an existing mailbox."""
    acct = require_account(txn, user, ctx.default_quota)
    name = normalize_mailbox_name(name)
    uk = boxnames.seal_user(txn, _key(txn, ctx, acct.id))
    forgotten = not subscribed and subscriptions.forget(txn, uk, name)
    row = txn.query_one("UPDATE mailboxes SET subscribed = ? WHERE user_id = ? AND name = ? RETURNING id",
                        (int(bool(subscribed)), acct.id, boxnames.lookup(uk, name)))
    if row is None:
        if forgotten:
            return  # the subscription of a deleted mailbox (RFC 3501 §6.3.7)
        raise MailboxNotFound(f"no mailbox {name}")
    ctx.notify(txn, acct.address, int(row[0]), name, "mailboxes", action="subscribe" if subscribed else "unsubscribe")
