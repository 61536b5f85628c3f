"""Expunge tombstones for QRESYNC (RFC 7162 section 3.2.5.2, 3.2.6): retention and lookup.

Every removal from a mailbox (EXPUNGE, UID EXPUNGE, CLOSE, MOVE in ``moving.py``, the RENAME of
INBOX in ``mailboxes.py``) writes ``(mailbox_id, uid, modseq)`` to ``expunged`` in the same
transaction. Retention is by count: a mailbox keeps its latest :data:`KEEP` tombstones; when a
removal (``moving.py``; a RENAME of INBOX waits for INBOX's next one) leaves more than
``KEEP + SLACK``, the oldest go, whole MODSEQ at a time, and ``expunged_floor`` remembers the
highest MODSEQ pruned. A resync from a
MODSEQ at or above the floor is answered exactly from the tombstones; one from below it is not
exact (:func:`vanished_since` says so) and the IMAP layer then reports every UID the client may
know of that is not in the mailbox any more, which RFC 7162 allows ("MAY ... include UIDs of
messages that were expunged before the specified MODSEQ").
"""

from __future__ import annotations

from tau.mail.store.mailboxes import require_owned
from tau.storage.database import Txn

#: tombstones kept per mailbox (a Thunderbird-sized mailbox expunges far fewer between syncs)
KEEP = 10_000
#: extra tombstones allowed before pruning, so a prune runs once per SLACK removals, not each time
SLACK = 1_000


def prune(txn: Txn, mailbox_id: int, keep: int | None = None, slack: int | None = None) -> int:
    """Drop the oldest tombstones past the retention limit; returns how many went."""
    keep = KEEP if keep is None else keep
    slack = SLACK if slack is None else slack
    count = int(txn.scalar("SELECT COUNT(*) FROM expunged WHERE mailbox_id = ?", (int(mailbox_id),)) or 0)
    if count <= keep + slack:
        return 0
    row = txn.query_one("SELECT modseq FROM expunged WHERE mailbox_id = ? ORDER BY modseq LIMIT 1 OFFSET ?",
                        (int(mailbox_id), count - keep - 1))
    assert row is not None
    floor = int(row[0])
    txn.execute("DELETE FROM expunged WHERE mailbox_id = ? AND modseq <= ?", (int(mailbox_id), floor))
    gone = txn.rowcount
    txn.execute("INSERT INTO expunged_floor (mailbox_id, modseq) VALUES (?, ?)"
                " ON CONFLICT (mailbox_id) DO UPDATE SET modseq = excluded.modseq", (int(mailbox_id), floor))
    return gone


def vanished_since(txn: Txn, mailbox_id: int, modseq: int, user: str | None = None) -> tuple[bool, list[int]]:
    """``(exact, uids)``: UIDs expunged after ``modseq``, ascending; ``exact`` is False when
    tombstones that may matter were pruned (``modseq`` below the mailbox's floor)."""
    require_owned(txn, mailbox_id, user)
    uids = [int(r[0]) for r in txn.query("SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                                         (int(mailbox_id), int(modseq)))]
    floor = txn.scalar("SELECT modseq FROM expunged_floor WHERE mailbox_id = ?", (int(mailbox_id),))
    return (floor is None or int(modseq) >= int(floor)), uids
