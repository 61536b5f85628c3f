"""Blob reference counting and garbage collection for content-addressed message blobs.

Identical content shares one blob key, so a blob may be deleted only when no message and no
outbound_queue row uses it. ``mail_blobs.refs`` counts those rows. The race to avoid: an
expunge drops the last reference while a delivery of the same bytes finds the blob already
stored (the upload is deduplicated away) and commits a row pointing at it, and then the blob is
deleted. Rules that prevent it:

* the collector deletes a blob only inside a transaction that deletes its ``mail_blobs`` row
  while ``refs <= 0`` (the row lock serialises it with deliveries of the same key);
* a transaction that raises ``refs`` from nothing (or 0) checks that the blob exists, and stores
  it again from the raw bytes when it does not (or refuses, when it has no bytes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from tau.mail.store.api import MailStoreError
from tau.mail.store.context import StoreContext
from tau.mail.store.fields import MessageFields
from tau.storage.database import Txn, placeholders

CHUNK = 500
_HEADER_ROWS = 200


class BlobMissing(MailStoreError):
    """The blob a caller referenced by key is gone (collected meanwhile): store it again."""

    code = "blob_missing"


def chunks(items: Sequence, size: int | None = None) -> Iterable[Sequence]:
    """``items`` in slices of ``size`` (default CHUNK: IN lists stay far below parameter limits)."""
    size = size or CHUNK
    for i in range(0, len(items), size):
        yield items[i:i + size]


def ref_blob(txn: Txn, ctx: StoreContext | None, key: str, count: int, fields: MessageFields | None = None,
             raw: bytes | None = None) -> None:
    """Add ``count`` references to ``key``; index its text and headers on first use.

    Without ``ctx`` (a caller composing its own transaction) the blob is not re-checked: the
    caller vouches that it has just been written.
    """
    for _ in range(5):
        row = txn.query_one("INSERT INTO mail_blobs (blob_key, refs) VALUES (?, ?)"
                            " ON CONFLICT (blob_key) DO NOTHING RETURNING refs", (key, count))
        fresh = row is not None
        if not fresh:
            row = txn.query_one("UPDATE mail_blobs SET refs = refs + ? WHERE blob_key = ? RETURNING refs",
                                (count, key))
            if row is None:  # collected between the two statements (PostgreSQL): insert again
                continue
            fresh = int(row[0]) <= count
        break
    else:  # pragma: no cover - needs a collector winning five times in a row
        raise MailStoreError("could not reference the message blob; try again")
    if fresh and ctx is not None:
        _ensure_stored(ctx, key, raw)
    if fields is not None:
        _index(txn, key, fields)


def _ensure_stored(ctx: StoreContext, key: str, raw: bytes | None) -> None:
    if ctx.blobs.exists(key):
        return
    if raw is None:
        raise BlobMissing(f"blob {key} is no longer stored; upload the message again")
    info = ctx.blobs.put(raw)
    if info.key != key:  # pragma: no cover - the key is the content's address
        raise MailStoreError("stored blob key does not match the message")


def _index(txn: Txn, key: str, fields: MessageFields) -> None:
    """Body text and header rows, once per distinct content."""
    row = txn.query_one("INSERT INTO message_text (blob_key, body) VALUES (?, ?)"
                        " ON CONFLICT (blob_key) DO NOTHING RETURNING blob_key", (key, fields.text))
    if row is None or not fields.headers:
        return
    rows = [(key, i, name, value) for i, (name, value) in enumerate(fields.headers)]
    for part in chunks(rows, _HEADER_ROWS):
        values = ", ".join(["(?, ?, ?, ?)"] * len(part))
        txn.execute(f"INSERT INTO message_headers (blob_key, position, name, value) VALUES {values}",
                    [v for r in part for v in r])


def add_refs(txn: Txn, keys: Sequence[str]) -> None:
    """One more reference for each occurrence in ``keys`` (copies: the blobs exist already)."""
    _shift(txn, Counter(keys), +1)


def drop_refs(txn: Txn, keys: Sequence[str]) -> list[str]:
    """One reference less per occurrence; returns the keys now unreferenced (collect them
    after commit)."""
    counts = Counter(keys)
    _shift(txn, counts, -1)
    unique = sorted(counts)
    gone: list[str] = []
    for part in chunks(unique):
        gone += [r[0] for r in txn.query(
            f"SELECT blob_key FROM mail_blobs WHERE refs <= 0 AND blob_key IN ({placeholders(len(part))})", part)]
    return gone


def _shift(txn: Txn, counts: Counter, sign: int) -> None:
    by_count: dict[int, list[str]] = {}
    for key, n in counts.items():
        by_count.setdefault(n, []).append(key)
    for n, keys in by_count.items():
        for part in chunks(sorted(keys)):
            txn.execute(f"UPDATE mail_blobs SET refs = refs + ? WHERE blob_key IN ({placeholders(len(part))})",
                        [sign * n, *part])


def collect(txn: Txn, ctx: StoreContext, keys: Sequence[str]) -> list[str]:
    """Delete the blobs of ``keys`` that are still unreferenced; returns those deleted.

    The blob goes inside the transaction: if deleting it fails, the row stays (refs 0) for the
    next sweep. Rows that still exist in messages/outbound_queue are recounted, never deleted.
    """
    deleted = []
    for key in sorted(set(keys)):
        # take the row lock even for a blob never referenced (a failed delivery's orphan)
        txn.execute("INSERT INTO mail_blobs (blob_key, refs) VALUES (?, 0) ON CONFLICT (blob_key) DO NOTHING",
                    (key,))
        row = txn.query_one("DELETE FROM mail_blobs WHERE blob_key = ? AND refs <= 0 RETURNING blob_key", (key,))
        if row is None:
            continue
        used = int(txn.scalar("SELECT COUNT(*) FROM messages WHERE blob_key = ?", (key,)) or 0)
        used += int(txn.scalar("SELECT COUNT(*) FROM outbound_queue WHERE blob_key = ?"
                               " AND status IN ('queued', 'sending')", (key,)) or 0)
        if used:  # the count drifted (should not happen): repair it, keep the blob
            txn.execute("INSERT INTO mail_blobs (blob_key, refs) VALUES (?, ?)", (key, used))
            continue
        txn.execute("DELETE FROM message_text WHERE blob_key = ?", (key,))
        txn.execute("DELETE FROM message_headers WHERE blob_key = ?", (key,))
        ctx.blobs.delete(key)
        deleted.append(key)
    return deleted


def unreferenced(txn: Txn, limit: int = 1000) -> list[str]:
    """Keys left at refs 0 (a collection that failed or never ran): for a periodic sweep."""
    return [r[0] for r in txn.query("SELECT blob_key FROM mail_blobs WHERE refs <= 0 ORDER BY blob_key LIMIT ?",
                                    (limit,))]
