"""The outbound queue: mail for remote domains, waiting for the delivery agent (a later issue).

SMTP submission and ``POST /api/emails`` call :func:`enqueue` (inside their own transaction if
they compose one, or through ``MailStore.enqueue_outbound``). Each row holds a reference on its
blob, so expunging the Sent copy never deletes bytes still waiting to go out; :func:`finish`
releases it once the row reaches ``sent`` or ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.blobs import validate_key
from tau.mail.store.api import MailStoreError
from tau.mail.store.blobrefs import drop_refs, ref_blob
from tau.mail.store.context import StoreContext
from tau.mail.store.quota import require_account
from tau.storage.database import Txn

STATUSES = ("queued", "sending", "sent", "failed")
_COLS = ("q.id, u.address, q.mail_from, q.rcpt_to, q.blob_key, q.size, q.message_id, q.created_at,"
         " q.next_attempt_at, q.attempts, q.status, q.last_error")


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    user: str | None
    mail_from: str
    rcpt_to: tuple[str, ...]
    blob_key: str
    size: int
    message_id: str | None
    created_at: int
    next_attempt_at: int
    attempts: int
    status: str
    last_error: str | None


def _row(r: tuple[Any, ...]) -> QueuedMessage:
    return QueuedMessage(int(r[0]), r[1], r[2], tuple(json.loads(r[3])), r[4], int(r[5]), r[6], int(r[7]),
                         int(r[8]), int(r[9]), r[10], r[11])


def enqueue(txn: Txn, user: str | None, mail_from: str, rcpt_to: Sequence[str], blob_key: str, size: int,
            message_id: str | None = None, ctx: StoreContext | None = None) -> int:
    """Queue ``blob_key`` for ``rcpt_to`` (remote addresses); returns the queue id.

    ``user`` is the submitting account's address (None for mail the server itself sends, such as
    DSNs); ``mail_from`` may be empty (the null reverse-path of a bounce, RFC 5321 section 4.5.5).
    """
    recipients = [r for r in rcpt_to if isinstance(r, str) and r]
    if not recipients:
        raise MailStoreError("an outbound message needs at least one recipient")
    validate_key(blob_key)
    user_id = None
    if user is not None:
        user_id = require_account(txn, user, 0).id
    now = int(txn.now)
    row = txn.query_one("INSERT INTO outbound_queue (user_id, mail_from, rcpt_to, blob_key, size, message_id,"
                        " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (user_id, mail_from or "", json.dumps(recipients), blob_key, int(size), message_id,
                         now, now))
    assert row is not None
    ref_blob(txn, ctx, blob_key, 1)
    return int(row[0])


def get(txn: Txn, queue_id: int) -> QueuedMessage | None:
    row = txn.query_one(f"SELECT {_COLS} FROM outbound_queue q LEFT JOIN users u ON u.id = q.user_id"
                        " WHERE q.id = ?", (int(queue_id),))
    return _row(row) if row else None


def list_queue(txn: Txn, status: str | None = None, limit: int = 100) -> list[QueuedMessage]:
    """Rows by id (for ``tau`` tooling and the delivery agent)."""
    where, params = ("WHERE q.status = ?", [status]) if status else ("", [])
    rows = txn.query(f"SELECT {_COLS} FROM outbound_queue q LEFT JOIN users u ON u.id = q.user_id {where}"
                     " ORDER BY q.id LIMIT ?", [*params, int(limit)])
    return [_row(r) for r in rows]


def finish(txn: Txn, queue_id: int, status: str, error: str | None = None) -> list[str]:
    """Move a row to ``status``; when final (sent/failed) its blob reference is released.
    Returns blob keys to garbage-collect after commit."""
    if status not in STATUSES:
        raise MailStoreError(f"unknown queue status {status!r}")
    row = txn.query_one("SELECT blob_key, status FROM outbound_queue WHERE id = ?", (int(queue_id),))
    if row is None:
        raise MailStoreError(f"no queued message {queue_id}")
    txn.execute("UPDATE outbound_queue SET status = ?, last_error = ? WHERE id = ?", (status, error, int(queue_id)))
    if status in ("sent", "failed") and row[1] not in ("sent", "failed"):
        return drop_refs(txn, [row[0]])
    return []
