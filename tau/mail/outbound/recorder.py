"""The delivery worker's database writes, batched: outcomes of finished attempts and claims of new
rows share one transaction, committed at most every ``FLUSH_DELAY`` seconds while there is work
(``delay``; the service makes it longer while SMTP is accepting mail, see ``pacing``).

Why: SQLite has one writer, and the connection pool has one connection, so every transaction of
the worker makes inbound SMTP (whose 250 waits for its own commit) wait too. Recording each message
on its own — and claiming rows in transactions of their own — meant hundreds of short write
transactions (and WAL fsyncs) a second while a queue drains; batched, it is a few dozen, whatever
the delivery rate. A claim asked for while no outcome is waiting runs at once.

A batch records every row (``rows.record_many``: one journal insert, one blob-reference update for
all of them) and, in the same transaction, each DSN for its sender (``dsn.build``; local senders
get it in their INBOX, others through the queue with a null sender). A failing batch is retried
one job at a time, so one bad row cannot keep its neighbours' outcomes from being recorded.
Blobs whose last reference went are collected after commit.

Crash safety is unchanged in kind: a peer's 250 not yet committed when the process dies is sent
again (at least once, RFC 5321 §6.1); the window grows by at most ``FLUSH_DELAY``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from tau.mail.store import queue as rows  # the queue's rows: claim, record, release

log = Logger()
FLUSH_DELAY = 0.025
MAX_BATCH = 200
Claim = tuple[int, int, bool]                 # (how many rows, lease seconds, reclaim expired leases first)


@dataclass
class Job:
    result: rows.Result
    sender: str                                   # the row's MAIL FROM (DSN recipient)
    report: tuple[str, int, Any] | None = None    # (blob key, size, fields) of a DSN to deliver


def record_jobs(txn: Any, ctx: Any, jobs: list[Job]) -> list[str]:
    """Every job's outcome and DSN; returns blob keys to collect after commit."""
    keys = rows.record_many(txn, [job.result for job in jobs], int(txn.now)) if jobs else []
    for job in jobs:
        if job.report is not None:
            deliver_report(txn, ctx, job.sender, *job.report)
    return keys


def deliver_report(txn: Any, ctx: Any, sender: str, key: str, size: int, fields: Any) -> None:
    """A DSN to ``sender``: into the INBOX of local targets, through the queue (null sender) else."""
    from tau.auth import accounts
    from tau.mail.store import messages, queue

    targets = accounts.resolve_recipient(txn, sender) if accounts.is_local_domain(
        txn, sender.rpartition("@")[2]) else [sender]
    local = [t for t in targets if accounts.is_local_domain(txn, t.rpartition("@")[2])]
    remote = [t for t in targets if t not in local]
    if local:
        messages.deliver(txn, ctx, sorted(local), key, size, fields, "INBOX", (), None, None)
    if remote:
        queue.enqueue(txn, None, "", remote, key, size, None, ctx)


def claim_rows(txn: Any, now: int, claim: Claim) -> list[tuple[rows.Claimed, set[str]]]:
    want, lease, reclaim = claim
    if reclaim:
        rows.reclaim(txn, now)
    claimed = rows.claim(txn, now, want, lease)
    skips = rows.already_sent_many(txn, [(row.message_key, row.pending()) for row in claimed])
    return list(zip(claimed, skips, strict=True))


def flush_txn(txn: Any, ctx: Any, jobs: list[Job], claim: Claim | None) -> tuple[list[str], list[Any]]:
    """One batch: outcomes first (rows they retry are not due yet), then the claim."""
    keys = record_jobs(txn, ctx, jobs)
    return keys, (claim_rows(txn, int(txn.now), claim) if claim is not None else [])


class Recorder:
    """Pending outcomes and at most one pending claim; one transaction at a time."""

    def __init__(self, reactor: Any, db: Any, store: Any, flushed: Callable[[], None] | None = None,
                 delay: Callable[[], float] = lambda: FLUSH_DELAY) -> None:
        self._reactor = reactor
        self._db = db
        self._store = store
        self._flushed = flushed
        self._delay = delay
        self._jobs: list[tuple[Job, defer.Deferred[None]]] = []
        self._claim: tuple[Claim, defer.Deferred[list[Any]]] | None = None
        self._timer: Any = None
        self._busy = False                # a transaction is under way
        self._running = 0                 # jobs in it
        self._idle: list[defer.Deferred[None]] = []
        self.transactions = 0

    @property
    def pending(self) -> int:
        """Outcomes not committed yet (waiting or in the transaction under way)."""
        return len(self._jobs) + self._running

    def record(self, job: Job) -> defer.Deferred[None]:
        """Fires once the job is committed (fails with the error of its own transaction)."""
        d: defer.Deferred[None] = defer.Deferred()
        self._jobs.append((job, d))
        self._schedule(0 if len(self._jobs) >= MAX_BATCH else self._delay())
        return d

    def claim(self, want: int, lease: int, reclaim: bool) -> defer.Deferred[list[Any]]:
        """Claim up to ``want`` due rows (with any outcomes waiting): [(row, recipients already sent)]."""
        if self._claim is not None:
            return defer.fail(RuntimeError("a claim is already pending"))
        d: defer.Deferred[list[Any]] = defer.Deferred()
        self._claim = ((want, lease, reclaim), d)
        self._schedule(0)
        return d

    def drain(self) -> defer.Deferred[None]:
        """Commit what is waiting now; fires when nothing is left."""
        if not self._jobs and not self._busy and self._claim is None:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        self._schedule(0)
        return d

    def _schedule(self, delay: float) -> None:
        if self._busy or self._timer is not None and self._timer.active() and delay > 0:
            return                                   # the transaction under way reschedules, or soon anyway
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._reactor.callLater(delay, self._start)

    def _start(self) -> None:
        self._timer = None
        defer.Deferred.fromCoroutine(self._flush()).addErrback(lambda f: log.failure("outbound recorder", f))

    async def _flush(self) -> None:
        batch, self._jobs = self._jobs[:MAX_BATCH], self._jobs[MAX_BATCH:]
        claim, self._claim = self._claim, None
        self._busy, self._running = True, len(batch)
        try:
            claimed = await self._commit(batch, claim[0] if claim is not None else None)
        except Exception:
            if claim is not None:
                claim[1].errback()
        else:
            if claim is not None:
                claim[1].callback(claimed)
        finally:
            self._busy, self._running = False, 0
        if self._jobs or self._claim is not None:
            self._schedule(0 if self._claim is not None or len(self._jobs) >= MAX_BATCH else self._delay())
        elif self._idle:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
        if self._flushed is not None:
            self._flushed()

    async def _commit(self, batch: list[tuple[Job, defer.Deferred[None]]], claim: Claim | None) -> list[Any]:
        """Record ``batch`` and claim; a failing batch is split up (the claim goes on its own)."""
        self.transactions += 1
        try:
            keys, claimed = await self._db.run("outbound_record", flush_txn, self._store.ctx,
                                               [job for job, _ in batch], claim)
        except Exception:
            if not batch or (len(batch) == 1 and claim is None):
                failure = Failure()
                for _, d in batch:
                    d.errback(failure)
                if claim is not None:
                    raise
                return []
            for one in batch:
                await self._commit([one], None)
            return (await self._commit([], claim)) if claim is not None else []
        for _, d in batch:
            d.callback(None)
        for key in keys:
            try:
                await self._store.discard_blob(key)
            except Exception:
                log.failure("collecting blob {key} failed", key=key)
        return claimed
