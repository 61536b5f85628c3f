"""Deferred purge of expunged messages: readable by the sessions that still see them, then gone.

IMAP lets a session keep showing a message another session expunged until it may send
``* n EXPUNGE`` (RFC 3501 section 7.4.1; ``tau.mail.imap.session`` keeps it as ``gone``). Dovecot
keeps such a message readable for those sessions, and so does tau: removing a message (EXPUNGE,
CLOSE, UID EXPUNGE, MOVE's source, REST delete) moves its row from ``messages`` into
``mail_purge_pending`` with everything FETCH and COPY need (flags, sizes, dates, the rendered
ENVELOPE/BODYSTRUCTURE, part offsets, the blob key), stamped with ``expunged_at``.

Why a separate table rather than a mark on ``messages``: every reader of ``messages`` (SELECT's
UID list, SEARCH, STATUS counters, REST listing and GET, QRESYNC, the privacy export) keeps its
meaning, "live messages", without learning a new condition; only the two paths that serve a
session's stale view (FETCH and COPY of UIDs missing from ``messages``) look here.

What changes at expunge time and what waits:

* quota (``mail_usage``) and the mailbox counters drop at once: the user's space is free;
* the pending row keeps its ``mail_blobs`` reference (it is a holder in
  :data:`tau.blobs.refstore.MAIL`), so neither the collector nor the blob sweeper deletes the blob;
* :func:`purge_due` deletes rows older than :data:`GRACE` and drops their references, collecting
  the blobs left unreferenced after commit.

``GRACE`` is 45 minutes: longer than IMAP's 30-minute autologout (RFC 3501 section 5.4, tau's
``IDLE_TIMEOUT``), so a session that goes quiet is logged out before what it shows goes away; a
session that keeps issuing commands reports the EXPUNGE at its next NOOP/IDLE/UID command long
before that. A session still holding a purged message in its view gets ``NO [EXPUNGEISSUED]``
(RFC 5530), never a server error. Disk for expunged mail is held that much longer; quota is not.

Multi-node safety: rows are deleted with ``DELETE ... RETURNING`` inside the transaction that
drops their references, so of two nodes purging the same rows only the one whose DELETE returned
them decrements (the other's DELETE waits on the row locks, then finds nothing). The periodic job
(``purge_job``) also takes a lease so that one node does the work per interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.mail.store.api import MailStoreError, MessageMeta
from tau.mail.store.blobrefs import chunks, drop_refs
from tau.mail.store.context import StoreContext
from tau.mail.store.mailboxes import require_owned
from tau.mail.store.messages import JOINED
from tau.storage.database import Txn, placeholders

GRACE = 45 * 60
TABLE = "mail_purge_pending"
#: the columns a pending row shares with ``messages``
COLUMNS = ("uid, modseq, flags, seen, deleted, internal_date, size, blob_key, envelope, body, bodystructure,"
           " subject, from_text, to_text, cc_text, bcc_text, message_id, sent_date, sent_day, parsed, kv")
_META = "uid, modseq, flags, internal_date, size, blob_key, envelope, body, bodystructure, kv"
#: COLUMNS as read from a live message (``messages m`` and its ``message_flags f``)
_SOURCE = ", ".join(("f." if c in ("uid", "modseq", "flags", "seen", "deleted") else "m.") + c
                    for c in COLUMNS.replace(" ", "").split(","))


class ExpungeIssued(MailStoreError):
    """Some of the requested messages were expunged and can no longer be read (IMAP: NO
    [EXPUNGEISSUED], RFC 5530)."""

    code = "expunge_issued"


def retire(txn: Txn, mailbox_id: int, uids: Sequence[int]) -> None:
    """Move these messages' rows out of ``messages`` into the pending table (their blob
    references move with them)."""
    for part in chunks(list(uids)):
        marks = placeholders(len(part))
        txn.execute(f"INSERT INTO {TABLE} (mailbox_id, {COLUMNS}, expunged_at) SELECT m.mailbox_id, {_SOURCE}, ?"
                    f" FROM {JOINED} WHERE m.mailbox_id = ? AND m.uid IN ({marks})",
                    [int(txn.now), int(mailbox_id), *part])
        # the message_flags rows go with them (ON DELETE CASCADE)
        txn.execute(f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({marks})", [int(mailbox_id), *part])


def select_retired(txn: Txn, columns: str, mailbox_id: int, uids: Sequence[int]) -> list[tuple[Any, ...]]:
    """Rows of ``columns`` of pending messages among ``uids``, ascending."""
    rows: list[tuple[Any, ...]] = []
    for part in chunks(sorted({int(u) for u in uids})):
        rows += txn.query(f"SELECT {columns} FROM {TABLE} WHERE mailbox_id = ? AND uid IN"
                          f" ({placeholders(len(part))}) ORDER BY uid", [int(mailbox_id), *part])
    return sorted(rows, key=lambda r: int(r[0]))


def fetch_retired(txn: Txn, keyring: Any, mailbox_id: int, uids: Sequence[int], with_parsed: bool = False,
                  user: str | None = None) -> list[MessageMeta]:
    """FETCH data of expunged messages not purged yet (flags as they were at expunge time)."""
    from tau.mail.store.messages import metas

    require_owned(txn, mailbox_id, user)
    rows = select_retired(txn, _META + (", parsed" if with_parsed else ""), mailbox_id, uids)
    return metas(txn, keyring, mailbox_id, rows, with_parsed)


def user_blob_keys(txn: Txn, user_id: int) -> list[str]:
    """Blob keys of the user's pending rows (privacy erasure drops their references; the rows
    go with the mailboxes by cascade)."""
    return [r[0] for r in txn.query(f"SELECT p.blob_key FROM {TABLE} p JOIN mailboxes b ON b.id = p.mailbox_id"
                                    " WHERE b.user_id = ?", (int(user_id),))]


def purge_due(txn: Txn, ctx: StoreContext, limit: int = 1000, grace: int = GRACE) -> int:
    """Purge up to ``limit`` rows expunged more than ``grace`` seconds ago; returns how many.
    Blobs left unreferenced are collected after commit."""
    due = txn.query(f"SELECT mailbox_id, uid FROM {TABLE} WHERE expunged_at <= ? ORDER BY expunged_at LIMIT ?",
                    (int(txn.now) - int(grace), int(limit)))
    by_box: dict[int, list[int]] = {}
    for mailbox_id, uid in due:
        by_box.setdefault(int(mailbox_id), []).append(int(uid))
    keys: list[str] = []
    for mailbox_id, uids in sorted(by_box.items()):
        for part in chunks(sorted(uids)):
            keys += [r[0] for r in txn.query(f"DELETE FROM {TABLE} WHERE mailbox_id = ? AND expunged_at <= ?"
                                             f" AND uid IN ({placeholders(len(part))}) RETURNING blob_key",
                                             [mailbox_id, int(txn.now) - int(grace), *part])]
    if keys:
        ctx.collect_after(txn, drop_refs(txn, keys))
    return len(keys)


def pending_count(txn: Txn) -> int:
    """Rows waiting for their purge (metrics, tests)."""
    return int(txn.scalar(f"SELECT COUNT(*) FROM {TABLE}") or 0)
