"""THREAD and SORT results kept in the database (issue 21): the first one after a restart reads them.

A THREAD's or a SORT's answer depends only on what is asked and on which messages it covers: a
UID's content (and so its keys) never changes within a UIDVALIDITY. So the last result over at
least ``MIN_MESSAGES`` messages of each mailbox and kind (``thread:references``,
``thread:orderedsubject``, ``sort:<criteria>``, at most ``MAX_SORTS`` of those) is stored with
the SHA-256 of (kind, UIDVALIDITY, the exact UIDs); a request whose matching UIDs hash the same
is answered from it: one narrow query for the UIDs and one row to open. Anything else (new
mail, an expunge, another search or sort order) works again and replaces the row. The result
is sealed under the owner's data key (a SORT order tells how subjects or senders compare); one
that no longer opens (its data key was retired and dropped) is simply worked out again.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Sequence

from tau.atrest.keyring import SealError, UserKey
from tau.storage.database import Txn

#: smaller sets are worked out faster than a write costs
MIN_MESSAGES = 500
#: sort orders kept per mailbox (one row each); past this they all go and the count starts again
MAX_SORTS = 8


def digest(kind: str, uidvalidity: int, uids: Sequence[int]) -> bytes:
    return hashlib.sha256(f"{kind}|{uidvalidity}|".encode() + _pack(uids)).digest()


def _context(mailbox_id: int, kind: str) -> str:
    return f"mail_results.result|{int(mailbox_id)}|{kind}"


def load(txn: Txn, uk: UserKey, mailbox_id: int, kind: str, key: bytes) -> list[int] | None:
    """The stored result of ``kind`` when it was made for the same request and UIDs (``digest``)."""
    row = txn.query_one("SELECT digest, result FROM mail_results WHERE mailbox_id = ? AND kind = ?",
                        (int(mailbox_id), kind))
    if row is None or bytes(row[0]) != key:
        return None
    try:
        return _unpack(uk.open(_context(mailbox_id, kind), row[1]))
    except SealError:
        return None


def save(txn: Txn, uk: UserKey, mailbox_id: int, kind: str, key: bytes, values: Sequence[int]) -> None:
    """Keep ``values`` as the mailbox's result of ``kind`` (replacing the previous one)."""
    if txn.query_one("SELECT 1 FROM mailboxes WHERE id = ?", (int(mailbox_id),)) is None:
        return  # deleted meanwhile
    if kind.startswith("sort:") and int(txn.scalar(
            "SELECT COUNT(*) FROM mail_results WHERE mailbox_id = ? AND kind LIKE 'sort:%' AND kind <> ?",
            (int(mailbox_id), kind))) >= MAX_SORTS:
        txn.execute("DELETE FROM mail_results WHERE mailbox_id = ? AND kind LIKE 'sort:%'", (int(mailbox_id),))
    txn.execute("INSERT INTO mail_results (mailbox_id, kind, digest, result) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (mailbox_id, kind) DO UPDATE SET digest = excluded.digest, result = excluded.result",
                (int(mailbox_id), kind, key, uk.seal(_context(mailbox_id, kind), _pack(values))))


def _pack(values: Sequence[int]) -> bytes:
    out = array("q", values)
    if sys.byteorder == "big":
        out.byteswap()  # stored little-endian whatever the host
    return out.tobytes()


def _unpack(raw: bytes) -> list[int]:
    out = array("q")
    out.frombytes(raw)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tolist()
