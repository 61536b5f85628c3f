"""Message transaction functions: deliver/append, uids, fetch, changed_since and flags.

A message is two rows: ``messages`` (what never changes: sizes, dates, the rendered IMAP items,
search columns, the blob key) and ``message_flags`` (flags, \\Seen/\\Deleted mirrors and MODSEQ),
keyed by (mailbox_id, uid) and removed or re-keyed with it by cascade. STORE touches only the
narrow rows: one UPDATE per batch of UIDs and distinct resulting flag list, all with one MODSEQ.

UIDs and MODSEQs come from one ``UPDATE mailboxes ... RETURNING`` that also moves the cached
counters, so allocation is atomic on both engines (the row lock serialises writers on
PostgreSQL; SQLite has one writer) and STATUS stays O(1). One operation takes one MODSEQ for
all the messages it changes (RFC 7162 section 3.1); MODSEQ never repeats within a mailbox.
Functions taking a ``mailbox_id`` expect it from a user-scoped lookup; pass ``user`` to have
ownership checked as well (see mailboxes.require_owned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.atrest.keyring import Keyring
from tau.mail.store import sealed
from tau.mail.store.api import (
    DEFAULT_MAILBOXES,
    Delivered,
    FlagChange,
    InvalidMailboxName,
    MailboxInfo,
    MailboxNotFound,
    MessageMeta,
    StoreResult,
)
from tau.mail.store.blobrefs import chunks, ref_blob
from tau.mail.store.context import StoreContext
from tau.mail.store.fields import MessageFields
from tau.mail.store.keywords import define as define_keywords
from tau.mail.store.mailboxes import ensure_defaults, find_box, find_special, lock_mailbox, require_owned
from tau.mail.store.names import INBOX, apply_flags, canonical_flags, flags_text, normalize_mailbox_name, split_flags
from tau.mail.store.opened import OpenedMeta
from tau.mail.store.quota import Account, charge, require_account
from tau.storage.database import Txn, placeholders

RANGES_PER_QUERY = 100
_SPECIAL = {name: use for name, use in DEFAULT_MAILBOXES if use}
#: live messages with their flags: content columns as ``m.*``, mutable state as ``f.*``
JOINED = "messages m JOIN message_flags f ON f.mailbox_id = m.mailbox_id AND f.uid = m.uid"
_META = ("m.uid, f.modseq, f.flags, m.internal_date, m.size, m.blob_key, m.envelope, m.body,"
         " m.bodystructure, m.kv")
_INSERT = ("INSERT INTO messages (mailbox_id, uid, internal_date, size, blob_key,"
           " envelope, body, bodystructure, subject, from_text, to_text, cc_text, bcc_text, message_id,"
           " parsed, sent_date, sent_day, kv) VALUES (" + placeholders(18) + ")")
INSERT_FLAGS = ("INSERT INTO message_flags (mailbox_id, uid, modseq, flags, seen, deleted)"
                " VALUES (?, ?, ?, ?, ?, ?)")


# -- selecting by UID --------------------------------------------------------------------------

def uid_ranges(uids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted, merged ranges of ``uids``."""
    out: list[list[int]] = []
    for uid in sorted(set(int(u) for u in uids)):
        if out and uid == out[-1][1] + 1:
            out[-1][1] = uid
        else:
            out.append([uid, uid])
    return [(a, b) for a, b in out]


def select_uids(txn: Txn, columns: str, mailbox_id: int, uids: Sequence[int], source: str = "messages",
                alias: str = "") -> list[tuple[Any, ...]]:
    """Rows of ``columns`` of ``source`` (a table, or :data:`JOINED` with ``alias="m."``) for
    ``uids`` (ascending): UID ranges when the set is mostly runs (``1:*`` is one query),
    otherwise IN lists of 500; never one query per message."""
    rows: list[tuple[Any, ...]] = []
    for cond, values in _uid_batches(uids, alias + "uid"):
        rows += txn.query(f"SELECT {columns} FROM {source} WHERE {alias}mailbox_id = ? AND ({cond})"
                          f" ORDER BY {alias}uid", [mailbox_id, *values])
    return rows


def _uid_batches(uids: Sequence[int], column: str = "uid") -> list[tuple[str, list[int]]]:
    """WHERE conditions on ``column`` covering ``uids``, each with its parameters: ``BETWEEN``
    ranges when the set is mostly runs (``1:5000`` is one condition), else IN lists of 500."""
    ranges = uid_ranges(uids)
    if len(ranges) * 5 <= sum(b - a + 1 for a, b in ranges):
        return [(" OR ".join([f"{column} BETWEEN ? AND ?"] * len(part)), [v for r in part for v in r])
                for part in chunks(ranges, RANGES_PER_QUERY)]
    flat = [u for a, b in ranges for u in range(a, b + 1)]
    return [(f"{column} IN ({placeholders(len(part))})", list(part)) for part in chunks(flat)]


def update_flags(txn: Txn, assignments: str, params: Sequence[Any], mailbox_id: int, uids: Sequence[int]) -> None:
    """``UPDATE message_flags SET assignments`` on ``uids``: one statement per batch (_uid_batches)."""
    for cond, values in _uid_batches(uids):
        txn.execute(f"UPDATE message_flags SET {assignments} WHERE mailbox_id = ? AND ({cond})",
                    [*params, mailbox_id, *values])


# -- storing -----------------------------------------------------------------------------------

def allocate(txn: Txn, mailbox_id: int, count: int, size: int, unseen: int) -> tuple[int, int]:
    """Reserve ``count`` UIDs and one MODSEQ, moving the counters: (first uid, modseq)."""
    row = txn.query_one("UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1,"
                        " messages = messages + ?, unseen = unseen + ?, size = size + ? WHERE id = ?"
                        " RETURNING uidnext, highestmodseq", (count, count, unseen, size, mailbox_id))
    if row is None:
        raise MailboxNotFound("no such mailbox")
    return int(row[0]) - count, int(row[1])


def target_box(txn: Txn, ctx: StoreContext, acct: Account, mailbox: str, fallback: bool) -> MailboxInfo:
    """The mailbox to store into. INBOX is created (with the other defaults) on first use;
    with ``fallback`` a default name ("Sent", "Junk") finds the box holding that special-use
    even after a rename, and a missing or invalid target means INBOX."""
    try:
        name = normalize_mailbox_name(mailbox)
    except InvalidMailboxName:
        if not fallback:
            raise
        name = INBOX
    box = find_box(txn, ctx, acct, name)
    if box is None and fallback and name in _SPECIAL:  # "Sent" after the user renamed it
        box = find_special(txn, ctx, acct, _SPECIAL[name])
    if box is None and (fallback or name == INBOX):
        box = find_box(txn, ctx, acct, INBOX)
        if box is None:
            ensure_defaults(txn, ctx, acct.address)
            box = find_box(txn, ctx, acct, INBOX)
    if box is None:
        raise MailboxNotFound(f"no mailbox {name}")
    return box


def store_message(txn: Txn, ctx: StoreContext, acct: Account, box: MailboxInfo, key: str, size: int,
                  fields: MessageFields, flags: tuple[str, ...], internal_date: int,
                  origin: dict[str, str] | None = None) -> Delivered:
    """One message row (the blob reference is the caller's, see ref_blob). ``origin`` (how the
    message came in, e.g. ``{"via": "submission", "user": ...}``) rides on the append event for
    subscribers that must not trust the message's own headers (iMIP, tau.calendar.imip)."""
    seen = "\\Seen" in flags
    deleted = "\\Deleted" in flags
    uid, modseq = allocate(txn, box.id, 1, size, 0 if seen else 1)
    flags, new_keywords = define_keywords(txn, box.id, flags)
    charge(txn, acct, size, 1)
    sent_date = fields.sent_date if fields.sent_date is not None else internal_date
    sent_day = fields.sent_day if fields.sent_day is not None else internal_date - internal_date % 86400
    uk = ctx.keyring.for_user_txn(txn, acct.id)
    txn.execute(_INSERT, (box.id, uid, internal_date, size, key,
                          *sealed.seal_row(uk, key, sealed.fields_values(fields)), sent_date, sent_day, uk.version))
    txn.execute(INSERT_FLAGS, (box.id, uid, modseq, flags_text(flags), int(seen), int(deleted)))
    sealed.store_content(txn, uk, key, fields.text, fields.headers, fields.sort_keys)
    extra: dict[str, Any] = {"origin": origin} if origin else {}
    if new_keywords:
        extra["keywords"] = new_keywords
    ctx.notify(txn, acct.address, box.id, box.name, "append", [uid], modseq, **extra)
    return Delivered(acct.address, box.name, box.uidvalidity, uid)


def deliver(txn: Txn, ctx: StoreContext, recipients: Sequence[str], key: str, size: int, fields: MessageFields,
            mailbox: str, flags: Sequence[str], internal_date: int | None, raw: bytes | None,
            origin: dict[str, str] | None = None) -> list[Delivered]:
    """One message for several users, all or nothing: an unknown user (UnknownUser) or one over
    quota (QuotaExceeded, the first in ``recipients`` order) rolls everything back. A user listed
    twice gets one copy. ``origin``: see store_message."""
    canonical = canonical_flags(flags)
    when = int(txn.now) if internal_date is None else int(internal_date)
    accounts: list[Account] = []
    for address in recipients:
        acct = require_account(txn, address, ctx.default_quota)
        if all(a.id != acct.id for a in accounts):
            accounts.append(acct)
    out = [store_message(txn, ctx, acct, target_box(txn, ctx, acct, mailbox, True), key, size, fields,
                         canonical, when, origin) for acct in accounts]
    if accounts:
        ref_blob(txn, ctx, key, len(accounts), fields, raw)
    return out


def append(txn: Txn, ctx: StoreContext, user: str, mailbox: str, key: str, size: int, fields: MessageFields,
           flags: Sequence[str], internal_date: int | None, raw: bytes | None) -> Delivered:
    """APPEND (RFC 3501 section 6.3.11): the mailbox must exist (IMAP answers NO [TRYCREATE])."""
    canonical = canonical_flags(flags)
    when = int(txn.now) if internal_date is None else int(internal_date)
    acct = require_account(txn, user, ctx.default_quota)
    box = target_box(txn, ctx, acct, mailbox, False)
    out = store_message(txn, ctx, acct, box, key, size, fields, canonical, when)
    ref_blob(txn, ctx, key, 1, fields, raw)
    return out


# -- reading -----------------------------------------------------------------------------------

def uids(txn: Txn, mailbox_id: int, user: str | None = None) -> list[int]:
    require_owned(txn, mailbox_id, user)
    return [int(r[0]) for r in txn.query("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid",
                                         (int(mailbox_id),))]


def fetch(txn: Txn, keyring: Keyring, mailbox_id: int, uid_list: Sequence[int], with_parsed: bool = False,
          user: str | None = None, opened: OpenedMeta | None = None) -> list[MessageMeta]:
    require_owned(txn, mailbox_id, user)
    columns = _META + (", m.parsed" if with_parsed else "")
    rows = select_uids(txn, columns, int(mailbox_id), uid_list, JOINED, "m.")
    return metas(txn, keyring, mailbox_id, rows, with_parsed, opened)


def metas(txn: Txn, keyring: Keyring, mailbox_id: int, rows: Sequence[Sequence[Any]],
          with_parsed: bool, opened: OpenedMeta | None = None) -> list[MessageMeta]:
    """MessageMeta of ``_META`` (+ parsed) rows, their sealed columns opened (or taken from
    ``opened``, where they are kept once opened)."""
    owner = sealed.owner_id(txn, mailbox_id) if any(int(r[9]) for r in rows) else None
    uk = keyring.for_user_txn(txn, owner) if owner is not None else None
    cached = opened.get if opened is not None and owner is not None else None
    new: list[tuple[str, tuple[str, str, str]]] = []
    out = []
    for r in rows:
        key, kv = r[5], int(r[9])
        meta = cached(owner, key) if cached is not None and kv else None
        if meta is None:
            meta = sealed.open_meta(uk, key, kv, r[6], r[7], r[8])
            if kv:
                new.append((key, meta))
        out.append(MessageMeta(int(r[0]), int(r[1]), split_flags(r[2]), int(r[3]), int(r[4]), key, *meta,
                               (sealed.open_text(uk, "parsed", key, kv, r[10]) or "") if with_parsed else ""))
    if opened is not None and owner is not None and new:
        opened.put_many(owner, new)
    return out


def flags_of(txn: Txn, mailbox_id: int, uid_list: Sequence[int], user: str | None = None) -> list[FlagChange]:
    """Flags and MODSEQ of ``uid_list`` (ascending, live messages only) from the narrow rows
    alone: FETCH (FLAGS) resyncs and STORE's report of the messages it left as they were."""
    require_owned(txn, mailbox_id, user)
    rows = select_uids(txn, "uid, flags, modseq", int(mailbox_id), uid_list, "message_flags")
    return [FlagChange(int(r[0]), split_flags(r[1]), int(r[2])) for r in rows]


def changed_since(txn: Txn, mailbox_id: int, modseq: int, user: str | None = None) -> list[FlagChange]:
    require_owned(txn, mailbox_id, user)
    rows = txn.query("SELECT uid, flags, modseq FROM message_flags WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                     (int(mailbox_id), int(modseq)))
    return [FlagChange(int(r[0]), split_flags(r[1]), int(r[2])) for r in rows]


def expunged_since(txn: Txn, mailbox_id: int, modseq: int, user: str | None = None) -> list[int]:
    """UIDs expunged after ``modseq`` (QRESYNC VANISHED, RFC 7162 section 3.2.5.2)."""
    require_owned(txn, mailbox_id, user)
    return [int(r[0]) for r in txn.query("SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                                         (int(mailbox_id), int(modseq)))]


# -- flags -------------------------------------------------------------------------------------

def store_flags(txn: Txn, ctx: StoreContext, mailbox_id: int, uid_list: Sequence[int], mode: str,
                flags: Sequence[str], unchanged_since: int | None = None, user: str | None = None) -> StoreResult:
    """STORE (RFC 3501 section 6.4.6) with UNCHANGEDSINCE (RFC 7162 section 3.1.3): messages
    whose MODSEQ is above it are left alone and reported in ``modified``. Only messages whose
    flags actually change get the new MODSEQ."""
    require_owned(txn, mailbox_id, user)
    wanted = canonical_flags(flags)
    apply_flags((), mode, ())  # validates mode before any write
    _, _, name, _, _, _, address = lock_mailbox(txn, ctx, mailbox_id)
    new_keywords: list[str] = []
    if mode != "-":
        wanted, new_keywords = define_keywords(txn, int(mailbox_id), wanted)
    rows = select_uids(txn, "uid, flags, modseq, seen", int(mailbox_id), uid_list, "message_flags")
    modified: list[int] = []
    changes: list[tuple[int, tuple[str, ...]]] = []
    unseen_delta = 0
    outcome: dict[str, tuple[str, ...] | None] = {}  # stored text → new flags (None: unchanged)
    for uid, text, modseq, seen in rows:
        if unchanged_since is not None and int(modseq) > unchanged_since:
            modified.append(int(uid))
            continue
        if text not in outcome:  # a mailbox holds few distinct flag lists: work out each once
            current = split_flags(text)
            new = apply_flags(current, mode, wanted)
            outcome[text] = new if new != current else None
        changed = outcome[text]
        if changed is not None:
            changes.append((int(uid), changed))
            unseen_delta += int(bool(seen)) - int("\\Seen" in changed)
    extra = {"keywords": new_keywords} if new_keywords else {}
    if not changes:
        if new_keywords:
            ctx.notify(txn, address, int(mailbox_id), name, "keywords", **extra)
        return StoreResult([], modified)
    row = txn.query_one("UPDATE mailboxes SET highestmodseq = highestmodseq + 1, unseen = unseen + ?"
                        " WHERE id = ? RETURNING highestmodseq", (unseen_delta, int(mailbox_id)))
    assert row is not None
    modseq = int(row[0])
    groups: dict[tuple[str, ...], list[int]] = {}
    for uid, new in changes:
        groups.setdefault(new, []).append(uid)
    for new, group in groups.items():
        update_flags(txn, "flags = ?, seen = ?, deleted = ?, modseq = ?",
                    [flags_text(new), int("\\Seen" in new), int("\\Deleted" in new), modseq], int(mailbox_id), group)
    changed_uids = [uid for uid, _ in changes]
    ctx.notify(txn, address, int(mailbox_id), name, "flags", changed_uids, modseq, **extra)
    return StoreResult([FlagChange(uid, new, modseq) for uid, new in changes], modified)
