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

The counts are the shared ledger's (:mod:`tau.blobs.refstore`, ``MAIL``); the text and header index
rows kept once per distinct content are mail's own.
"""

from __future__ import annotations

from collections.abc import Sequence

from tau.blobs.refstore import MAIL, chunks
from tau.mail.store.api import MailStoreError
from tau.mail.store.context import StoreContext
from tau.mail.store.fields import MessageFields
from tau.mail.store.sealed import drop_content
from tau.storage.database import Txn

__all__ = ["BlobMissing", "add_refs", "chunks", "collect", "drop_refs", "ref_blob", "unreferenced"]


class BlobMissing(MailStoreError):
    """The blob a caller referenced by key is gone (collected meanwhile): store it again."""

    code = "blob_missing"


def ref_blob(txn: Txn, ctx: StoreContext | None, key: str, count: int, fields: MessageFields | None = None,
             raw: bytes | None = None) -> None:
    """Add ``count`` references to ``key`` (its search text, headers and sort keys are each
    recipient's own sealed rows: ``sealed.store_content``, written with the message row).

    Without ``ctx`` (a caller composing its own transaction) the blob is not re-checked: the
    caller vouches that it has just been written.
    """
    fresh = MAIL.add(txn, key, count)
    if fresh is None:  # pragma: no cover - needs a collector winning five times in a row
        raise MailStoreError("could not reference the message blob; try again")
    if fresh and ctx is not None:
        _ensure_stored(ctx, key, raw)


def _ensure_stored(ctx: StoreContext, key: str, raw: bytes | None) -> None:
    if ctx.blobs.exists(key):
        return
    if raw is None:
        raise BlobMissing(f"blob {key} is no longer stored; upload the message again")
    info = ctx.blobs.put(raw)
    if info.key != key:  # pragma: no cover - the key is the content's address
        raise MailStoreError("stored blob key does not match the message")


def add_refs(txn: Txn, keys: Sequence[str]) -> None:
    """One more reference for each occurrence in ``keys`` (copies: the blobs exist already)."""
    MAIL.shift(txn, keys, +1)


def drop_refs(txn: Txn, keys: Sequence[str]) -> list[str]:
    """One reference less per occurrence; returns the keys now unreferenced (collect them
    after commit)."""
    return MAIL.unreferenced_of(txn, MAIL.shift(txn, keys, -1))


def collect(txn: Txn, ctx: StoreContext, keys: Sequence[str]) -> list[str]:
    """Delete the blobs of ``keys`` that are still unreferenced; returns those deleted.

    The blob goes inside the transaction: if deleting it fails, the row stays (refs 0) for the
    next sweep. Rows that still exist in messages/outbound_queue are recounted, never deleted.
    """
    deleted = []
    for key in sorted(set(keys)):
        # take the row lock even for a blob never referenced (a failed delivery's orphan)
        MAIL.hold(txn, key)
        if not MAIL.remove_unreferenced(txn, key):
            continue
        used = MAIL.uses(txn, key)
        if used:  # the count drifted (should not happen): repair it, keep the blob
            MAIL.restore(txn, key, used)
            continue
        txn.execute("DELETE FROM message_text WHERE blob_key = ?", (key,))  # rows from before sealing
        txn.execute("DELETE FROM message_headers WHERE blob_key = ?", (key,))
        txn.execute("DELETE FROM message_sort_keys WHERE blob_key = ?", (key,))
        drop_content(txn, key)
        ctx.blobs.delete(key)
        deleted.append(key)
    return deleted


def unreferenced(txn: Txn, limit: int = 1000) -> list[str]:
    """Keys left at refs 0 (a collection that failed or never ran): for a periodic sweep."""
    return MAIL.unreferenced(txn, limit)
