"""Per-mailbox counts that the mailbox row does not keep: STATUS DELETED (RFC 9051 §6.3.11).

One grouped query over the partial index ``message_flags_deleted`` for any number of mailboxes, so
LIST-STATUS asking for DELETED costs one statement, not one per mailbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from tau.storage.database import Txn

CHUNK = 500


def deleted_counts(txn: Txn, mailbox_ids: Sequence[int]) -> dict[int, int]:
    """``{mailbox_id: messages flagged \\Deleted}`` for the given mailboxes (absent: none)."""
    out: dict[int, int] = {}
    ids = list(dict.fromkeys(mailbox_ids))
    for start in range(0, len(ids), CHUNK):
        sql, params = txn.in_list(ids[start:start + CHUNK])
        rows = txn.query(f"SELECT mailbox_id, COUNT(*) FROM message_flags WHERE deleted = 1 AND mailbox_id IN {sql}"
                         " GROUP BY mailbox_id", params)
        out.update((int(r[0]), int(r[1])) for r in rows)
    return out
