"""The blob-reference ledger: how many rows use each content-addressed blob.

Identical content is stored once, so a blob may be deleted only when no row uses it. Each owner
keeps its counts in its own table of the same shape (``blob_key`` primary key, ``refs``):
``mail_blobs`` (messages and queued mail) and ``file_blobs`` (file nodes). The rules against the
race between dropping the last reference and a deduplicated upload of the same bytes are the
same for both:

* a blob is deleted only inside a transaction that deletes its ledger row while ``refs <= 0``
  (the row lock serialises it with writers of the same key);
* a transaction that raises ``refs`` from nothing (or 0) learns so from :meth:`Ledger.add` and
  checks that the blob still exists (the owner decides what to do when it does not).

The owners' policies stay with them (:mod:`tau.mail.store.blobrefs`, :mod:`tau.files.blobrefs`);
the SQL on the ledger tables is here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

from tau.storage.database import Txn, placeholders

CHUNK = 500
T = TypeVar("T")


def chunks(items: Sequence[T], size: int | None = None) -> Iterable[Sequence[T]]:
    """``items`` in slices of ``size`` (default CHUNK: IN lists stay far below parameter limits)."""
    size = size or CHUNK
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Ledger:
    """Reference counts in one owner's table, and the tables whose rows hold the references
    (``(table, condition)``: a row counts when the condition holds). Names are fixed below, never
    taken from input."""

    def __init__(self, table: str, holders: tuple[tuple[str, str], ...]) -> None:
        self.table = table
        self.holders = holders

    def uses(self, txn: Txn, key: str) -> int:
        """Rows that reference ``key`` now (to repair a count that drifted)."""
        return sum(int(txn.scalar(f"SELECT COUNT(*) FROM {table} WHERE blob_key = ?{_and(cond)}", (key,)) or 0)
                   for table, cond in self.holders)

    def orphans(self, txn: Txn, limit: int = 1000) -> list[str]:
        """Ledger keys no holder row names (their rows went without a decrement, e.g. a cascade)."""
        unused = " AND ".join(f"NOT EXISTS (SELECT 1 FROM {table} h WHERE h.blob_key = b.blob_key{_and(cond)})"
                              for table, cond in self.holders)
        return [r[0] for r in txn.query(f"SELECT b.blob_key FROM {self.table} b WHERE {unused} LIMIT ?", (limit,))]

    def add(self, txn: Txn, key: str, count: int) -> bool | None:
        """Add ``count`` references; True when the key had none before (check the blob exists),
        None when a collector kept winning the row (try again later)."""
        for _ in range(5):
            row = txn.query_one(f"INSERT INTO {self.table} (blob_key, refs) VALUES (?, ?)"
                                " ON CONFLICT (blob_key) DO NOTHING RETURNING refs", (key, count))
            if row is not None:
                return True
            row = txn.query_one(f"UPDATE {self.table} SET refs = refs + ? WHERE blob_key = ? RETURNING refs",
                                (count, key))
            if row is not None:
                return int(row[0]) <= count
            # collected between the two statements (PostgreSQL): insert again
        return None  # pragma: no cover - needs a collector winning five times in a row

    def shift(self, txn: Txn, keys: Sequence[str], sign: int) -> Counter[str]:
        """``sign`` references per occurrence in ``keys`` (rows that exist); returns the counts."""
        counts = Counter(keys)
        by_count: dict[int, list[str]] = {}
        for key, n in counts.items():
            by_count.setdefault(n, []).append(key)
        for n, group in by_count.items():
            for part in chunks(sorted(group)):
                txn.execute(f"UPDATE {self.table} SET refs = refs + ? WHERE blob_key IN ({placeholders(len(part))})",
                            [sign * n, *part])
        return counts

    def unreferenced_of(self, txn: Txn, keys: Iterable[str]) -> list[str]:
        """Those of ``keys`` whose count is zero (or below)."""
        gone: list[str] = []
        for part in chunks(sorted(set(keys))):
            gone += [r[0] for r in txn.query(f"SELECT blob_key FROM {self.table} WHERE refs <= 0"
                                             f" AND blob_key IN ({placeholders(len(part))})", part)]
        return gone

    def decrement(self, txn: Txn, key: str, count: int) -> int | None:
        """``count`` references less; the new count (None: no row)."""
        row = txn.query_one(f"UPDATE {self.table} SET refs = refs - ? WHERE blob_key = ? RETURNING refs",
                            (count, key))
        return None if row is None else int(row[0])

    def hold(self, txn: Txn, key: str) -> None:
        """A row (refs 0) for ``key`` if it has none: takes the row lock for a collector."""
        txn.execute(f"INSERT INTO {self.table} (blob_key, refs) VALUES (?, 0) ON CONFLICT (blob_key) DO NOTHING",
                    (key,))

    def remove_unreferenced(self, txn: Txn, key: str) -> bool:
        """Delete the row if its count is zero (or below); True if it went."""
        return txn.query_one(f"DELETE FROM {self.table} WHERE blob_key = ? AND refs <= 0 RETURNING blob_key",
                             (key,)) is not None

    def remove(self, txn: Txn, key: str) -> None:
        txn.execute(f"DELETE FROM {self.table} WHERE blob_key = ?", (key,))

    def restore(self, txn: Txn, key: str, refs: int) -> None:
        """Put a row back with a recounted ``refs`` (a collector found the count had drifted)."""
        txn.execute(f"INSERT INTO {self.table} (blob_key, refs) VALUES (?, ?)", (key, refs))

    def has(self, txn: Txn, key: str) -> bool:
        return txn.query_one(f"SELECT 1 FROM {self.table} WHERE blob_key = ?", (key,)) is not None

    def keys(self, txn: Txn) -> set[str]:
        return {r[0] for r in txn.query(f"SELECT blob_key FROM {self.table}")}

    def unreferenced(self, txn: Txn, limit: int = 1000) -> list[str]:
        """Keys left at refs 0 (a collection that failed or never ran): for a periodic sweep."""
        return [r[0] for r in txn.query(f"SELECT blob_key FROM {self.table} WHERE refs <= 0 ORDER BY blob_key"
                                        " LIMIT ?", (limit,))]


def _and(condition: str) -> str:
    return f" AND {condition}" if condition else ""


#: messages, expunged messages awaiting their purge and the outbound rows still to send hold
#: message blobs
MAIL = Ledger("mail_blobs", (("messages", ""), ("mail_purge_pending", ""),
                             ("outbound_queue", "status IN ('queued', 'sending')")))
#: file nodes, their earlier versions and the chunks of unfinished uploads hold file blobs
FILES = Ledger("file_blobs", (("file_nodes", ""), ("file_versions", ""), ("file_upload_parts", "")))
