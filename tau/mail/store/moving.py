"""COPY, MOVE and EXPUNGE transaction functions.

Copies are ``INSERT ... SELECT`` inside the database (the rendered ENVELOPE/BODYSTRUCTURE never
travel through Python) and share the source's blob: only ``mail_blobs.refs`` grows. Destination
UIDs are consecutive in source UID order, which gives the COPYUID pairs (RFC 4315 section 3).
Removal records ``(uid, modseq)`` in ``expunged`` for QRESYNC and moves the rows into the purge
table (``purge``): sessions that still show them keep reading them until the purge job drops
their blob references after a grace period. Quota and mailbox counters drop at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.mail.store import purge, tombstones
from tau.mail.store.api import CopyResult, MailboxInfo, MailboxNotFound
from tau.mail.store.blobrefs import add_refs, chunks
from tau.mail.store.context import StoreContext
from tau.mail.store.keywords import define as define_keywords
from tau.mail.store.keywords import flags_in
from tau.mail.store.mailboxes import find_box, lock_mailbox, owner, require_owned
from tau.mail.store.messages import JOINED, allocate, select_uids
from tau.mail.store.names import normalize_mailbox_name
from tau.mail.store.quota import Account, charge, require_account
from tau.storage.database import Txn, placeholders

_COPIED = ("internal_date, size, blob_key, envelope, body, bodystructure, subject,"
           " from_text, to_text, cc_text, bcc_text, message_id, sent_date, sent_day, parsed, kv")
_STATE = "flags, seen, deleted"
#: what COPY and MOVE read of each source message
_ROWS = "m.uid, m.size, f.seen, m.blob_key, f.flags"


def _destination(txn: Txn, ctx: StoreContext, mailbox_id: int, dest_user: str, dest_mailbox: str,
                 user: str | None) -> tuple[Account, MailboxInfo]:
    """The destination box; the source must belong to the same user (a session can only ever
    hand out its own mail, never push it into someone else's mailbox)."""
    require_owned(txn, mailbox_id, user)
    acct = require_account(txn, dest_user, ctx.default_quota)
    if owner(txn, mailbox_id) != acct.address:
        raise MailboxNotFound("no such mailbox")
    box = find_box(txn, ctx, acct, normalize_mailbox_name(dest_mailbox))
    if box is None:
        raise MailboxNotFound(f"no mailbox {dest_mailbox}")  # IMAP: NO [TRYCREATE]
    for locked in sorted({int(mailbox_id), box.id}):
        lock_mailbox(txn, ctx, locked)
    return acct, box


def _source(table: str, columns: str, mailbox_id: int, part: Sequence[int], retired: bool) -> tuple[str, list[Any]]:
    """The ``columns`` of ``table`` (``messages`` or ``message_flags``) to copy: live messages,
    plus (``retired``) expunged ones awaiting their purge, whose rows hold both."""
    marks = placeholders(len(part))
    if not retired:
        return f"{table} WHERE mailbox_id = ? AND uid IN ({marks})", [mailbox_id, *part]
    return (f"(SELECT uid, {columns} FROM {table} WHERE mailbox_id = ? AND uid IN ({marks}) UNION ALL"
            f" SELECT uid, {columns} FROM {purge.TABLE} WHERE mailbox_id = ? AND uid IN ({marks})) src",
            [mailbox_id, *part, mailbox_id, *part])


def _copy_rows(txn: Txn, ctx: StoreContext, acct: Account, source: int, box: MailboxInfo,
               rows: list[tuple[Any, ...]], count_quota: bool, retired: bool = False) -> CopyResult:
    """Insert copies of ``rows`` (uid, size, seen, blob_key, flags) into ``box``."""
    total = sum(int(r[1]) for r in rows)
    unseen = sum(1 for r in rows if not r[2])
    first, modseq = allocate(txn, box.id, len(rows), total, unseen)
    _, new_keywords = define_keywords(txn, box.id, flags_in(r[4] for r in rows))
    if count_quota:
        charge(txn, acct, total, len(rows))
    src_uids = [int(r[0]) for r in rows]
    offset = 0
    for part in chunks(src_uids):
        table, params = _source("messages", _COPIED, source, part, retired)
        txn.execute(f"INSERT INTO messages (mailbox_id, uid, {_COPIED})"
                    f" SELECT ?, ? + ROW_NUMBER() OVER (ORDER BY uid), {_COPIED} FROM {table}",
                    [box.id, first + offset - 1, *params])
        table, params = _source("message_flags", _STATE, source, part, retired)
        txn.execute(f"INSERT INTO message_flags (mailbox_id, uid, modseq, {_STATE})"
                    f" SELECT ?, ? + ROW_NUMBER() OVER (ORDER BY uid), ?, {_STATE} FROM {table}",
                    [box.id, first + offset - 1, modseq, *params])
        offset += len(part)
    pairs = [(uid, first + i) for i, uid in enumerate(src_uids)]
    extra = {"keywords": new_keywords} if new_keywords else {}
    ctx.notify(txn, acct.address, box.id, box.name, "append", [d for _, d in pairs], modseq, **extra)
    return CopyResult(box.uidvalidity, pairs)


def _remove_rows(txn: Txn, ctx: StoreContext, mailbox_id: int, name: str, address: str,
                 rows: list[tuple[Any, ...]]) -> list[int]:
    """Delete ``rows`` (uid, size, seen, blob_key) from the mailbox; one MODSEQ for all."""
    total = sum(int(r[1]) for r in rows)
    unseen = sum(1 for r in rows if not r[2])
    row = txn.query_one("UPDATE mailboxes SET highestmodseq = highestmodseq + 1, messages = messages - ?,"
                        " unseen = unseen - ?, size = size - ? WHERE id = ? RETURNING highestmodseq",
                        (len(rows), unseen, total, mailbox_id))
    assert row is not None
    modseq = int(row[0])
    removed = [int(r[0]) for r in rows]
    for part in chunks(removed):
        txn.execute(f"INSERT INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, ? FROM messages"
                    f" WHERE mailbox_id = ? AND uid IN ({placeholders(len(part))})", [modseq, mailbox_id, *part])
    purge.retire(txn, mailbox_id, removed)  # readable by stale views until purged; keeps the blob refs
    tombstones.prune(txn, mailbox_id)
    ctx.notify(txn, address, mailbox_id, name, "expunge", removed, modseq)
    return removed


def _with_retired(txn: Txn, mailbox_id: int, uid_list: Sequence[int],
                  rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], bool]:
    """``rows`` plus the expunged messages among ``uid_list`` still awaiting their purge;
    ExpungeIssued when some are not even that. The flag: whether any came from the purge table."""
    missing = {int(u) for u in uid_list} - {int(r[0]) for r in rows}
    if not missing:
        return rows, False
    more = purge.select_retired(txn, "uid, size, seen, blob_key, flags", int(mailbox_id), sorted(missing))
    if len(more) < len(missing):
        raise purge.ExpungeIssued("some of the requested messages no longer exist")
    return sorted(rows + more, key=lambda r: int(r[0])), True


def copy(txn: Txn, ctx: StoreContext, mailbox_id: int, uid_list: Sequence[int], dest_user: str,
         dest_mailbox: str, user: str | None = None, strict: bool = False) -> CopyResult:
    """COPY (RFC 3501 section 6.4.7): flags and internal date travel, the blob is shared; the
    copies count against the quota (QuotaExceeded copies nothing).

    ``strict`` (IMAP, whose session may still show messages another session expunged): every
    UID is copied, expunged ones from their pending rows (as FETCH still reads them), or, when
    one was purged already, nothing is and ExpungeIssued is raised (RFC 3501: COPY is all or
    nothing). Without it, UIDs that are not live are skipped."""
    acct, box = _destination(txn, ctx, mailbox_id, dest_user, dest_mailbox, user)
    rows = select_uids(txn, _ROWS, int(mailbox_id), uid_list, JOINED, "m.")
    retired = False
    if strict:
        rows, retired = _with_retired(txn, mailbox_id, uid_list, rows)
    if not rows:
        return CopyResult(box.uidvalidity, [])
    result = _copy_rows(txn, ctx, acct, int(mailbox_id), box, rows, count_quota=True, retired=retired)
    add_refs(txn, [r[3] for r in rows])
    return result


def move(txn: Txn, ctx: StoreContext, mailbox_id: int, uid_list: Sequence[int], dest_user: str,
         dest_mailbox: str, user: str | None = None, strict: bool = False) -> CopyResult:
    """MOVE (RFC 6851): copy and expunge in one transaction. Usage does not change (same owner),
    so a full mailbox can still move mail out to Trash. The copies take new blob references; the
    source rows keep theirs until purged (``purge``).

    ``strict`` (IMAP): a UID that is no longer live (another session expunged or moved it) makes
    the whole MOVE fail with ExpungeIssued, moving nothing: moving it again would duplicate it."""
    acct, box = _destination(txn, ctx, mailbox_id, dest_user, dest_mailbox, user)
    rows = select_uids(txn, _ROWS, int(mailbox_id), uid_list, JOINED, "m.")
    if strict and len(rows) < len({int(u) for u in uid_list}):
        raise purge.ExpungeIssued("some of the requested messages no longer exist")
    if not rows:
        return CopyResult(box.uidvalidity, [])
    result = _copy_rows(txn, ctx, acct, int(mailbox_id), box, rows, count_quota=False)
    add_refs(txn, [r[3] for r in rows])
    _, _, name, _, _, _, address = lock_mailbox(txn, ctx, mailbox_id)
    _remove_rows(txn, ctx, int(mailbox_id), name, address, rows)
    return result


def expunge(txn: Txn, ctx: StoreContext, mailbox_id: int, uid_list: Sequence[int] | None = None,
            user: str | None = None) -> list[int]:
    """EXPUNGE / UID EXPUNGE (RFC 3501 section 6.4.3, RFC 4315 section 2.1): remove \\Deleted
    messages (only those in ``uid_list`` when given). Returns the UIDs removed, ascending."""
    require_owned(txn, mailbox_id, user)
    _, user_id, name, _, _, _, address = lock_mailbox(txn, ctx, mailbox_id)
    rows = txn.query(f"SELECT f.uid, m.size, f.seen, m.blob_key FROM {JOINED} WHERE f.mailbox_id = ? AND f.deleted = 1"
                     " ORDER BY f.uid", (int(mailbox_id),))
    if uid_list is not None:
        wanted = {int(u) for u in uid_list}
        rows = [r for r in rows if int(r[0]) in wanted]
    if not rows:
        return []
    removed = _remove_rows(txn, ctx, int(mailbox_id), name, address, rows)
    charge(txn, Account(user_id, address, 0), -sum(int(r[1]) for r in rows), -len(rows))
    return removed
