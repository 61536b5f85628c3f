"""MULTIAPPEND (RFC 3502): several messages into one mailbox in one transaction, all or none.

Each message is charged against the quota as it is stored; the first that would pass the limit
(QuotaExceeded) rolls back the messages before it too. The blobs were written by the caller
before the transaction; on failure the caller collects them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tau.mail.store.api import Delivered
from tau.mail.store.blobrefs import ref_blob
from tau.mail.store.context import StoreContext
from tau.mail.store.fields import MessageFields
from tau.mail.store.messages import store_message, target_box
from tau.mail.store.names import canonical_flags
from tau.mail.store.quota import require_account
from tau.storage.database import Txn


@dataclass(frozen=True)
class Prepared:
    """One message of a MULTIAPPEND, its blob already written."""

    key: str
    size: int
    fields: MessageFields
    flags: tuple[str, ...]
    internal_date: int | None
    raw: bytes | None


def append_many(txn: Txn, ctx: StoreContext, user: str, mailbox: str,
                items: Sequence[Prepared]) -> list[Delivered]:
    """Store ``items`` in order (ascending UIDs) into the user's existing ``mailbox``."""
    acct = require_account(txn, user, ctx.default_quota)
    box = target_box(txn, ctx, acct, mailbox, False)
    out = []
    for item in items:
        when = int(txn.now) if item.internal_date is None else int(item.internal_date)
        out.append(store_message(txn, ctx, acct, box, item.key, item.size, item.fields,
                                 canonical_flags(item.flags), when))
        ref_blob(txn, ctx, item.key, 1, item.fields, item.raw)
    return out
