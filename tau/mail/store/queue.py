"""The outbound queue (``outbound_queue``, ``outbound_sent``): the one module that reads and writes it.

SMTP submission and ``POST /api/emails`` call :func:`enqueue` (inside their own transaction if
they compose one, or through ``MailStore.enqueue_outbound``). Each row holds a reference on its
blob, so expunging the Sent copy never deletes bytes still waiting to go out; :func:`finish`
releases it once the row reaches ``sent`` or ``failed``. Admin tools retry and delete rows
(:func:`retry`, :func:`delete`), a purged account's rows go with :func:`purge_user`.

The delivery worker (:mod:`tau.mail.outbound`) claims rows and records attempts here too.
Claiming: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`` on PostgreSQL,
so several nodes take disjoint rows without waiting on each other; SQLite has one writer
(``BEGIN IMMEDIATE``) and one node, so the plain sub-select is enough. A claimed row is
``sending`` with a lease; a row whose lease ran out (its worker died, e.g. kill -9) goes back to
``queued``. Per-recipient progress is a JSON map in ``rcpt_state`` and every recipient that got
a 250 is journaled in ``outbound_sent`` by (Message-ID, recipient) in the same transaction, so a
retried row skips whoever already has the message.

At rest (issue 16), what remote servers answered — ``last_error`` and the per-recipient replies of
``rcpt_state`` — is sealed (``error_s``, ``state_s``) under the submitting user's data key
(``key_user``, kept when the account is deleted without a purge: the texts are then shredded) or,
for mail the server itself sends, under the keyring's system key. Rows from before keep their
plaintext columns until ``QueueTable`` (the converter) seals them; readers take either form. The
envelope (sender, recipients, DSN request) stays readable: routing needs it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tau.atrest.keyring import Keyring, UserKey
from tau.atrest.sealed import key_if_user
from tau.atrest.store import active_version_sql
from tau.blobs import validate_key
from tau.mail.store.api import MailStoreError
from tau.mail.store.blobrefs import drop_refs, ref_blob
from tau.mail.store.context import StoreContext
from tau.mail.store.quota import require_account
from tau.storage.database import Txn, placeholders

STATUSES = ("queued", "sending", "sent", "failed")
STATES = ("queued", "held", "sending", "sent", "failed")     # what operators see: held is a queued row on hold
_COLS = ("q.id, u.address, q.mail_from, q.rcpt_to, q.blob_key, q.size, q.message_id, q.created_at,"
         " q.next_attempt_at, q.attempts, q.status, q.last_error, q.held, q.rcpt_state, q.key_user, q.error_s,"
         " q.state_s")
_STATE = "CASE WHEN q.held = 1 AND q.status = 'queued' THEN 'held' ELSE q.status END"


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
    held: bool = False
    rcpt_state: dict[str, list[Any]] = field(default_factory=dict)   # rcpt → [status, code, text, remote]

    @property
    def state(self) -> str:
        """``status``, or ``held`` for a queued row on hold."""
        return "held" if self.held and self.status == "queued" else self.status

    def to_json(self) -> dict[str, Any]:
        """The row as ``/api/admin/queue`` and ``tau queue list --json`` show it."""
        return {"id": self.id, "state": self.state, "status": self.status, "held": self.held, "user": self.user,
                "mail_from": self.mail_from, "rcpt_to": list(self.rcpt_to), "size": self.size,
                "message_id": self.message_id, "blob_key": self.blob_key, "created_at": self.created_at,
                "next_attempt_at": self.next_attempt_at, "attempts": self.attempts, "last_error": self.last_error,
                "recipients": {r: {"status": s[0], "code": s[1] if len(s) > 1 else None,
                                   "text": s[2] if len(s) > 2 else None} for r, s in self.rcpt_state.items()}}


class QueueBusy(MailStoreError):
    """The row is being delivered right now; try again shortly."""

    code = "queue_busy"


def _key(txn: Txn, key_user: int | None) -> UserKey | None:
    """The key a row's texts are sealed under: its user's, or the system key (no user); None when
    that user is gone (their texts are shredded)."""
    if key_user is None:
        keyring: Keyring = txn.keyring
        return keyring.system()
    return key_if_user(txn, int(key_user))


def _texts(txn: Txn, queue_id: int, key_user: int | None, error: str | None, state: str | None,
           error_s: Any, state_s: Any) -> tuple[str | None, dict[str, list[Any]]]:
    """(last error, per-recipient state) of a row, opened (or as a row from before holds them)."""
    if error_s is not None or state_s is not None:
        uk = _key(txn, key_user)
        error = None if error_s is None or uk is None else uk.open_text(f"outbound_queue.last_error|{queue_id}",
                                                                         error_s)
        state = None if state_s is None or uk is None else uk.open_text(f"outbound_queue.rcpt_state|{queue_id}",
                                                                         state_s)
    return error, json.loads(state) if state else {}


def _seal_texts(txn: Txn, queue_id: int, key_user: int | None, error: str | None,
                state: dict[str, list[Any]] | None) -> tuple[bytes | None, bytes | None, int, int | None]:
    """(error_s, state_s, kv, key_user) to store: sealed under the row's user's active key, or
    the system key when there is none (any more)."""
    uk = _key(txn, key_user)
    if uk is None:
        key_user, uk = None, _key(txn, None)
    assert uk is not None
    error_s = None if error is None else uk.seal(f"outbound_queue.last_error|{queue_id}", error)
    state_s = None if state is None else uk.seal(f"outbound_queue.rcpt_state|{queue_id}", json.dumps(state))
    return error_s, state_s, uk.version, key_user


def _row(txn: Txn, r: tuple[Any, ...]) -> QueuedMessage:
    error, state = _texts(txn, int(r[0]), r[14], r[11], r[13], r[15], r[16])
    return QueuedMessage(int(r[0]), r[1], r[2], tuple(json.loads(r[3])), r[4], int(r[5]), r[6], int(r[7]),
                         int(r[8]), int(r[9]), r[10], error, bool(r[12]), state)


def enqueue(txn: Txn, user: str | None, mail_from: str, rcpt_to: Sequence[str], blob_key: str, size: int,
            message_id: str | None = None, ctx: StoreContext | None = None, dsn: str | None = None,
            require_tls: bool = False) -> int:
    """Queue ``blob_key`` for ``rcpt_to`` (remote addresses); returns the queue id.

    ``user`` is the submitting account's address (None for mail the server itself sends, such as
    DSNs); ``mail_from`` may be empty (the null reverse-path of a bounce, RFC 5321 section 4.5.5).
    ``dsn`` is the RFC 3461 request as JSON (``tau.mail.smtp.dsn_params.DsnRequest.to_json``),
    ``require_tls`` the RFC 8689 REQUIRETLS flag.
    """
    recipients = [r for r in rcpt_to if isinstance(r, str) and r]
    if not recipients:
        raise MailStoreError("an outbound message needs at least one recipient")
    validate_key(blob_key)
    user_id = None
    if user is not None:
        user_id = require_account(txn, user, 0).id
    now = int(txn.now)
    row = txn.query_one("INSERT INTO outbound_queue (user_id, key_user, mail_from, rcpt_to, blob_key, size,"
                        " message_id, created_at, next_attempt_at, dsn, require_tls)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (user_id, user_id, mail_from or "", json.dumps(recipients), blob_key, int(size), message_id,
                         now, now, dsn, int(require_tls)))
    assert row is not None
    ref_blob(txn, ctx, blob_key, 1)
    return int(row[0])


def get(txn: Txn, queue_id: int) -> QueuedMessage | None:
    row = txn.query_one(f"SELECT {_COLS} FROM outbound_queue q LEFT JOIN users u ON u.id = q.user_id"
                        " WHERE q.id = ?", (int(queue_id),))
    return _row(txn, row) if row else None


def list_queue(txn: Txn, status: str | None = None, limit: int = 100) -> list[QueuedMessage]:
    """Rows by id (for ``tau`` tooling and the delivery agent); ``status`` is one of ``STATES``."""
    if status is not None and status not in STATES:
        raise MailStoreError(f"unknown queue state {status!r}")
    where, params = (f"WHERE {_STATE} = ?", [status]) if status else ("", [])
    rows = txn.query(f"SELECT {_COLS} FROM outbound_queue q LEFT JOIN users u ON u.id = q.user_id {where}"
                     " ORDER BY q.id LIMIT ?", [*params, int(limit)])
    return [_row(txn, r) for r in rows]


def finish(txn: Txn, queue_id: int, status: str, error: str | None = None) -> list[str]:
    """Move a row to ``status``; when final (sent/failed) its blob reference is released.
    Returns blob keys to garbage-collect after commit."""
    if status not in STATUSES:
        raise MailStoreError(f"unknown queue status {status!r}")
    row = txn.query_one("SELECT blob_key, status, key_user, rcpt_state, state_s FROM outbound_queue WHERE id = ?",
                        (int(queue_id),))
    if row is None:
        raise MailStoreError(f"no queued message {queue_id}")
    _, state = _texts(txn, int(queue_id), row[2], None, row[3], None, row[4])  # re-sealed with the error
    sealed = _seal_texts(txn, int(queue_id), row[2], error, state if row[3] or row[4] else None)
    txn.execute("UPDATE outbound_queue SET status = ?, last_error = NULL, rcpt_state = NULL, error_s = ?,"
                " state_s = ?, kv = ?, key_user = ? WHERE id = ?", (status, *sealed, int(queue_id)))
    if status in ("sent", "failed") and row[1] not in ("sent", "failed"):
        return drop_refs(txn, [row[0]])
    return []


def retry(txn: Txn, queue_id: int) -> bool:
    """A queued, held or failed row is due again now (and no longer held); False when there is
    no such row."""
    txn.execute("UPDATE outbound_queue SET next_attempt_at = ?, status = 'queued', held = 0 WHERE id = ?"
                " AND status IN ('queued', 'failed')", (int(txn.now), queue_id))
    return txn.rowcount == 1


def retry_all(txn: Txn) -> int:
    """Every queued row that is not held is due now (``postqueue -f``); returns how many."""
    txn.execute("UPDATE outbound_queue SET next_attempt_at = ? WHERE status = 'queued' AND held = 0",
                (int(txn.now),))
    return txn.rowcount


def hold(txn: Txn, queue_id: int) -> bool:
    """Keep a queued row from delivery until :func:`unhold`; False when there is no queued row
    with this id. ``QueueBusy`` while it is being delivered."""
    row = txn.query_one("SELECT status FROM outbound_queue WHERE id = ?", (int(queue_id),))
    if row is not None and row[0] == "sending":
        raise QueueBusy("this message is being delivered right now; try again shortly")
    txn.execute("UPDATE outbound_queue SET held = 1 WHERE id = ? AND status = 'queued'", (int(queue_id),))
    return txn.rowcount == 1


def unhold(txn: Txn, queue_id: int) -> bool:
    """A held row goes back to delivery, due now; False when no held row has this id."""
    txn.execute("UPDATE outbound_queue SET held = 0, next_attempt_at = ? WHERE id = ? AND held = 1"
                " AND status = 'queued'", (int(txn.now), int(queue_id)))
    return txn.rowcount == 1


def delete(txn: Txn, queue_id: int) -> list[str] | None:
    """Remove a row (None: no such row); a row still holding its blob reference (not yet final)
    releases it: returns the blob keys to collect after commit. ``QueueBusy`` while sending."""
    row = txn.query_one("SELECT blob_key, status FROM outbound_queue WHERE id = ?", (queue_id,))
    if row is None:
        return None
    if row[1] == "sending":
        raise QueueBusy("this message is being delivered right now; try again shortly")
    txn.execute("DELETE FROM outbound_queue WHERE id = ?", (queue_id,))
    return drop_refs(txn, [row[0]]) if row[1] not in ("sent", "failed") else []


def pending_blob_keys(txn: Txn, user_id: int) -> list[str]:
    """Blob keys the user's not yet final rows still reference (one per row)."""
    return [r[0] for r in txn.query("SELECT blob_key FROM outbound_queue WHERE user_id = ?"
                                    " AND status IN ('queued', 'sending')", (user_id,))]


def delete_user_rows(txn: Txn, user_id: int) -> None:
    """Every row of the user (``ON DELETE SET NULL`` would keep them); the caller has released
    the blob references of :func:`pending_blob_keys`."""
    txn.execute("DELETE FROM outbound_queue WHERE user_id = ?", (user_id,))


# -- the delivery worker ---------------------------------------------------------------------

_CLAIM_COLS = ("q.id, u.address, q.mail_from, q.rcpt_to, q.blob_key, q.size, q.message_id, q.created_at, q.attempts,"
         " q.rcpt_state, q.warned, q.signed_headers, q.dsn, q.require_tls, q.key_user, q.state_s")


@dataclass
class Claimed:
    id: int
    user: str | None
    mail_from: str
    rcpt_to: list[str]
    blob_key: str
    size: int
    message_id: str | None
    created_at: int
    attempts: int
    state: dict[str, list[Any]]            # rcpt → [status, code, text]
    warned: bool
    signed_headers: str | None
    dsn: str | None = None                 # RFC 3461 request, JSON (tau.mail.smtp.dsn_params)
    require_tls: bool = False              # RFC 8689 REQUIRETLS
    key_user: int | None = None            # whose key seals the row's texts (None: the system key)

    @property
    def message_key(self) -> str:
        return self.message_id or self.blob_key

    def pending(self) -> list[str]:
        return [r for r in self.rcpt_to if self.state.get(r, ["pending"])[0] not in ("sent", "failed")]


def _claimed(txn: Txn, r: tuple[Any, ...]) -> Claimed:
    _, state = _texts(txn, int(r[0]), r[14], None, r[9], None, r[15])
    return Claimed(int(r[0]), r[1], r[2], json.loads(r[3]), r[4], int(r[5]), r[6], int(r[7]), int(r[8]),
                   state, bool(r[10]), r[11], r[12], bool(r[13]), r[14])


def reclaim(txn: Txn, now: int, everything: bool = False) -> int:
    """Rows whose lease expired (or every ``sending`` row: one SQLite node starting) → queued."""
    cond = "" if everything else " AND lease_until < ?"
    txn.execute(f"UPDATE outbound_queue SET status = 'queued', lease_until = 0 WHERE status = 'sending'{cond}",
                () if everything else (now,))
    return txn.rowcount


def claim(txn: Txn, now: int, limit: int, lease: int) -> list[Claimed]:
    """Take up to ``limit`` due rows for this worker."""
    lock = " FOR UPDATE SKIP LOCKED" if txn.engine.name == "postgres" else ""
    ids = [int(r[0]) for r in txn.query(
        "SELECT id FROM outbound_queue WHERE status = 'queued' AND held = 0 AND next_attempt_at <= ?"
        f" ORDER BY next_attempt_at, id LIMIT ?{lock}", (now, int(limit)))]
    if not ids:
        return []
    marks = placeholders(len(ids))
    txn.execute(f"UPDATE outbound_queue SET status = 'sending', lease_until = ? WHERE id IN ({marks})",
                [now + lease, *ids])
    rows = txn.query(f"SELECT {_CLAIM_COLS} FROM outbound_queue q LEFT JOIN users u ON u.id = q.user_id"
                     f" WHERE q.id IN ({marks}) ORDER BY q.id", ids)
    return [_claimed(txn, r) for r in rows]


def already_sent(txn: Txn, message_key: str, rcpts: list[str]) -> set[str]:
    return already_sent_many(txn, [(message_key, rcpts)])[0]


def already_sent_many(txn: Txn, wanted: list[tuple[str, list[str]]]) -> list[set[str]]:
    """For each (message key, recipients): those journaled in ``outbound_sent`` (one query per
    100 message keys, not one per row)."""
    keys = sorted({key for key, rcpts in wanted if rcpts})
    found: dict[str, set[str]] = {}
    for start in range(0, len(keys), 100):
        part = keys[start:start + 100]
        marks = placeholders(len(part))
        for key, rcpt in txn.query(f"SELECT message_key, rcpt FROM outbound_sent WHERE message_key IN ({marks})",
                                   part):
            found.setdefault(key, set()).add(rcpt)
    return [found.get(key, set()) & {r.lower() for r in rcpts} for key, rcpts in wanted]


@dataclass
class Result:
    """What one attempt changed about one row."""

    row: Claimed
    outcomes: dict[str, list[Any]] = field(default_factory=dict)   # rcpt → [status, code, text, remote]
    next_attempt_at: int = 0
    expired: bool = False
    warned: bool = False
    signed_headers: str | None = None

    @property
    def final(self) -> bool:
        state = {**self.row.state, **self.outcomes}
        return all(state.get(r, ["pending"])[0] in ("sent", "failed") for r in self.row.rcpt_to)


def record(txn: Txn, result: Result, now: int) -> list[str]:
    """Store one attempt; returns blob keys to collect after commit (final rows release theirs)."""
    return record_many(txn, [result], now)


def record_many(txn: Txn, results: list[Result], now: int) -> list[str]:
    """Store attempts (of rows this worker holds); one blob-reference update for all the rows that
    became final. Returns the blob keys to collect after commit."""
    sent = [(r.row.message_key, rcpt.lower(), r.row.id, now) for r in results
            for rcpt, s in r.outcomes.items() if s[0] == "sent"]
    if sent:
        txn.executemany("INSERT INTO outbound_sent (message_key, rcpt, queue_id, sent_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (message_key, rcpt) DO NOTHING", sent)
    released = [r.row.blob_key for r in results if _update_row(txn, r)]
    return drop_refs(txn, released) if released else []


def _update_row(txn: Txn, result: Result) -> bool:
    """The row's new state; True when it became final just now (its blob reference goes)."""
    row = result.row
    state = {**row.state, **result.outcomes}
    errors = [f"{r}: {s[1]} {s[2]}" for r, s in state.items() if s[0] in ("failed", "retry")]
    last_error = "; ".join(errors)[:2000] or None
    sealed = _seal_texts(txn, row.id, row.key_user, last_error, state)
    texts = ("rcpt_state = NULL, last_error = NULL, error_s = ?, state_s = ?, kv = ?, key_user = ?")
    if result.final:
        status = "sent" if any(s[0] == "sent" for s in state.values()) else "failed"
        txn.execute(f"UPDATE outbound_queue SET status = ?, {texts}, attempts = attempts + 1,"
                    " lease_until = 0, signed_headers = COALESCE(?, signed_headers)"
                    " WHERE id = ? AND status = 'sending'",
                    (status, *sealed, result.signed_headers, row.id))
        return txn.rowcount > 0
    txn.execute(f"UPDATE outbound_queue SET status = 'queued', {texts}, attempts = attempts + 1,"
                " next_attempt_at = ?, lease_until = 0, warned = ?,"
                " signed_headers = COALESCE(?, signed_headers) WHERE id = ? AND status = 'sending'",
                (*sealed, result.next_attempt_at, int(row.warned or result.warned),
                 result.signed_headers, row.id))
    return False


def release(txn: Txn, ids: list[int]) -> int:
    """Rows claimed but not attempted (the worker is stopping) → queued again, due now."""
    if not ids:
        return 0
    marks = placeholders(len(ids))
    txn.execute(f"UPDATE outbound_queue SET status = 'queued', lease_until = 0 WHERE status = 'sending'"
                f" AND id IN ({marks})", ids)
    return txn.rowcount


def counts(txn: Txn) -> dict[str, int]:
    """Rows per state, ``held`` apart from ``queued`` (``/api/admin/queue``, health, metrics)."""
    return {str(r[0]): int(r[1]) for r in txn.query(
        f"SELECT {_STATE}, COUNT(*) FROM outbound_queue q GROUP BY {_STATE}")}


# -- at rest -----------------------------------------------------------------------------------

# rows whose texts are still in plaintext, or sealed under a user's retired data key
_PENDING = ("q.last_error IS NOT NULL OR q.rcpt_state IS NOT NULL OR (q.key_user IS NOT NULL AND q.kv > 0"
            f" AND q.kv < {active_version_sql('q.key_user')})")


class QueueTable:
    """The ``AtRestTable`` of the outbound queue's texts (remote servers' replies)."""

    name = "queue"

    def pending(self, txn: Txn) -> int:
        return int(txn.scalar(f"SELECT COUNT(*) FROM outbound_queue q WHERE {_PENDING}"))

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        rows = txn.query(f"SELECT q.id, q.key_user, q.last_error, q.rcpt_state, q.error_s, q.state_s"
                         f" FROM outbound_queue q WHERE {_PENDING} ORDER BY q.id LIMIT ?", (int(limit),))
        for queue_id, key_user, *texts in rows:
            error, state = _texts(txn, int(queue_id), key_user, *texts)
            sealed = _seal_texts(txn, int(queue_id), key_user, error, state if texts[1] or texts[3] else None)
            txn.execute("UPDATE outbound_queue SET last_error = NULL, rcpt_state = NULL, error_s = ?, state_s = ?,"
                        " kv = ?, key_user = ? WHERE id = ?", (*sealed, queue_id))
        return len(rows)
