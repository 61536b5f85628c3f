"""THREAD results kept in the database (issue 21): the first THREAD after a restart reads them.

A THREAD's answer depends only on the algorithm and on which messages it threads: a UID's
content (and so its thread keys) never changes within a UIDVALIDITY. So the last result of each
mailbox and algorithm over at least ``MIN_MESSAGES`` messages is stored with the SHA-256 of
(algorithm, UIDVALIDITY, the exact UIDs); a THREAD whose matching UIDs hash the same is answered
from it: one narrow query for the UIDs, one row, no threading. Anything else (new mail, an
expunge, another search) threads again and replaces the row. The row holds UIDs and the thread
structure only, no text.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Sequence

from tau.storage.database import Txn

#: smaller sets thread faster than a write costs
MIN_MESSAGES = 500


def digest(algorithm: str, uidvalidity: int, uids: Sequence[int]) -> bytes:
    return hashlib.sha256(f"{algorithm}|{uidvalidity}|".encode() + _pack(uids)).digest()


def load(txn: Txn, mailbox_id: int, algorithm: str, key: bytes) -> list[int] | None:
    """The stored result of ``algorithm`` when it was made for the same UIDs (``digest``)."""
    row = txn.query_one("SELECT digest, flat FROM mail_thread_results WHERE mailbox_id = ? AND algorithm = ?",
                        (int(mailbox_id), algorithm))
    if row is None or bytes(row[0]) != key:
        return None
    return _unpack(bytes(row[1]))


def save(txn: Txn, mailbox_id: int, algorithm: str, key: bytes, flat: Sequence[int]) -> None:
    """Keep ``flat`` as the mailbox's result of ``algorithm`` (replacing the previous one)."""
    if txn.query_one("SELECT 1 FROM mailboxes WHERE id = ?", (int(mailbox_id),)) is None:
        return  # deleted meanwhile
    txn.execute("INSERT INTO mail_thread_results (mailbox_id, algorithm, digest, flat) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (mailbox_id, algorithm) DO UPDATE SET digest = excluded.digest, flat = excluded.flat",
                (int(mailbox_id), algorithm, key, _pack(flat)))


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
