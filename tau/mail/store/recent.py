"""The \\Recent high-water mark (RFC 3501 section 2.3.2).

``mailboxes.recent_uid``: messages at or above it are recent and not yet claimed by a session.
A session claims ``[recent_uid, upto)`` (``upto`` = one past the highest UID it has announced)
by moving the mark to ``upto`` under the mailbox row lock, so of all sessions on all nodes
exactly one sees each message as recent. Sessions that find the mark already past ``upto`` (the
usual case for the second of several idling sessions) read it without taking the lock.
"""

from __future__ import annotations

from tau.mail.store.keywords import keywords
from tau.mail.store.mailboxes import require_owned
from tau.storage.database import Txn


def mark(txn: Txn, mailbox_id: int) -> int | None:
    """The mailbox's ``recent_uid`` (None: no such mailbox)."""
    value = txn.scalar("SELECT recent_uid FROM mailboxes WHERE id = ?", (int(mailbox_id),))
    return None if value is None else int(value)


def select_state(txn: Txn, mailbox_id: int, user: str | None = None) -> tuple[list[str], int]:
    """The mailbox's keywords and recent mark (0 when the mailbox has gone)."""
    words = keywords(txn, mailbox_id, user)
    return words, mark(txn, mailbox_id) or 0


def claim(txn: Txn, mailbox_id: int, upto: int) -> int:
    """Claim the unclaimed recent messages below ``upto``: the first UID of the claimed range
    ``[first, upto)``, or ``upto`` when there is nothing to claim."""
    mid, upto = int(mailbox_id), int(upto)
    lock = " FOR UPDATE" if txn.engine.name == "postgres" else ""
    mark = txn.scalar("SELECT recent_uid FROM mailboxes WHERE id = ?" + lock, (mid,))
    if mark is None or int(mark) >= upto:
        return upto
    txn.execute("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (upto, mid))
    return int(mark)


def unclaimed(txn: Txn, mailbox_id: int, user: str | None = None) -> int:
    """How many messages are recent and not yet claimed by any session (STATUS RECENT)."""
    require_owned(txn, mailbox_id, user)
    return int(txn.scalar("SELECT COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                          " WHERE m.mailbox_id = ? AND m.uid >= b.recent_uid", (int(mailbox_id),)) or 0)


def unclaimed_by_mailbox(txn: Txn, user_id: int) -> dict[int, int]:
    """Unclaimed recent messages of every mailbox of a user that has any (LIST-STATUS), one query."""
    rows = txn.query("SELECT m.mailbox_id, COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                     " WHERE b.user_id = ? AND m.uid >= b.recent_uid GROUP BY m.mailbox_id", (int(user_id),))
    return {int(r[0]): int(r[1]) for r in rows}
