"""What EXPUNGE would free in one mailbox: STATUS DELETED and DELETED-STORAGE (RFC 9208 §4.2,
RFC 9051 §6.3.11). One query over the partial index ``message_flags_deleted``, which holds only the
rows flagged ``\\Deleted``."""

from __future__ import annotations

from tau.mail.store.mailboxes import require_owned
from tau.mail.store.messages import JOINED
from tau.storage.database import Txn


def deleted_usage(txn: Txn, mailbox_id: int, user: str | None = None) -> tuple[int, int]:
    """(messages flagged \\Deleted, their octets)."""
    require_owned(txn, mailbox_id, user)
    row = txn.query_one(f"SELECT COUNT(*), COALESCE(SUM(m.size), 0) FROM {JOINED}"
                        " WHERE f.mailbox_id = ? AND f.deleted = 1", (int(mailbox_id),))
    return (int(row[0]), int(row[1])) if row else (0, 0)
