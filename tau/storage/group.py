"""Group commit for durable writes: transactions that arrive while others are committing share
the next transaction, so one commit (one WAL fsync) acknowledges them all.

Why: every APPEND OK, PUT 201 or CalDAV PUT must be on disk before it is answered, and a commit
costs an fsync; with SQLite the writes queue behind one connection anyway. A lone writer runs at
once in its own transaction (no fixed delay); writers arriving meanwhile wait for a running
batch to end and then go together, each inside its own SAVEPOINT, so one writer's refusal (a
full quota, a failed precondition) is rolled back alone and reported to that writer only. A
retryable failure (deadlock, serialisation, busy) retries the whole batch; if the batch still
fails, its writers run one by one, each in its own transaction, as without grouping.

Transaction functions keep their usual shape ``fn(txn, *args)``; each gets its own ``Txn`` over
the batch's cursor, so its after-commit callbacks (and its ``write_at_end`` items, written for
the whole batch in one go before commit) are kept only if the job was.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

if TYPE_CHECKING:
    from tau.storage.database import Database, Txn

log = Logger()
MAX_BATCH = 64


@dataclass
class _Job:
    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    done: Deferred[Any] = field(default_factory=Deferred)


def run_batch(txn: Txn, jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """Each job inside a savepoint of ``txn``; (True, result) or (False, exception) per job.

    Where the engine takes several statements in one round trip (PostgreSQL) a job's savepoint
    (and the release of the one before) travels with the job's first statement, and a kept
    savepoint is released only when the next one begins (COMMIT keeps what an open one holds):
    a job of one statement costs one round trip, not three. A job refused before it sent any
    statement has nothing to roll back."""
    outcomes: list[tuple[bool, Any]] = []
    ahead = txn.engine.multi_statement
    opened = False  # a savepoint of an earlier job is still open (only when ``ahead``)
    for job in jobs:
        sub = type(txn)(txn._cursor, txn.engine, txn.budget, txn.now)
        sub.keyring, sub.memo = txn.keyring, txn.memo  # stores seal user content through the batch's keyring
        memo = dict(txn.memo)
        begin = ("RELEASE SAVEPOINT tau_group; " if opened else "") + "SAVEPOINT tau_group"
        if ahead:
            sub.ahead = [begin]
        else:
            txn.execute(begin)
        try:
            result = job.fn(sub, *job.args, **job.kwargs)
            if sub.ahead != [begin]:
                sub.flush()  # e.g. a lock sent ahead of a statement the job did not need after all
        except Exception as exc:
            if txn.engine.is_retryable(exc) or txn.engine.is_timeout(exc):
                raise  # the whole batch: retried, or run one by one
            if sub.ahead != [begin]:  # the savepoint reached the server: undo what the job did
                txn.execute("ROLLBACK TO SAVEPOINT tau_group")
                if ahead:
                    opened = True  # rolled back to, still open: released when the next begins
                else:
                    txn.execute("RELEASE SAVEPOINT tau_group")
            # what the job looked up or made is gone with its savepoint (a key made on first use,
            # a lock taken): the next job must not trust a memo of it
            txn.memo.clear()
            txn.memo.update(memo)
            outcomes.append((False, exc))
            continue
        if not ahead:
            txn.execute("RELEASE SAVEPOINT tau_group")
        elif sub.ahead != [begin]:
            opened = True
        txn.after_commit.extend(sub.after_commit)
        for key, (writer, items) in sub.at_end.items():  # one write for the batch, at its end
            txn.at_end.setdefault(key, (writer, []))[1].extend(items)
        outcomes.append((True, result))
    return outcomes


class GroupCommit:
    """Queue of write transactions; at most ``concurrency`` batches in flight."""

    def __init__(self, db: Database, concurrency: int = 1, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._concurrency = max(1, concurrency)
        self._max_batch = max_batch
        self._waiting: list[_Job] = []
        self._running = 0
        self.batches = 0  # for tests and benchmarks: transactions that carried more than one job
        self.largest = 0

    def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Like ``Database.run`` for a write; fires once the job's work is committed."""
        if self._running < self._concurrency and not self._waiting:
            self._running += 1  # alone: its own transaction, now, as the caller's user
            d = self._db.run(name, fn, *args, **kwargs)
            d.addBoth(self._finished)
            return d
        job = _Job(name, fn, args, kwargs)
        self._waiting.append(job)
        return job.done

    def _finished(self, outcome: Any) -> Any:
        self._running -= 1
        self._start()
        return outcome

    def _start(self) -> None:
        while self._waiting and self._running < self._concurrency:
            batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
            self._running += 1
            self.largest = max(self.largest, len(batch))
            # a fresh context: the batch is nobody's (no user's pool share, no background budget)
            contextvars.Context().run(self._launch, batch)

    def _launch(self, batch: list[_Job]) -> None:
        if len(batch) == 1:
            job = batch[0]
            d = self._db.run(job.name, job.fn, *job.args, **job.kwargs)
            d.addBoth(self._finished).chainDeferred(job.done)
            return
        self.batches += 1
        d = self._db.run("group_commit", run_batch, batch)
        d.addCallbacks(self._batch_done, self._batch_failed, callbackArgs=(batch,), errbackArgs=(batch,))
        d.addErrback(lambda f: log.failure("group commit failed", failure=f))
        d.addBoth(self._finished)

    def _batch_done(self, outcomes: list[tuple[bool, Any]], batch: list[_Job]) -> None:
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                job.done.callback(value)
            else:
                job.done.errback(value)

    def _batch_failed(self, failure: Any, batch: list[_Job]) -> Deferred[None]:
        """The batch as a whole failed: each job alone, as if never grouped."""
        return Deferred.fromCoroutine(self._one_by_one(batch))

    async def _one_by_one(self, batch: list[_Job]) -> None:
        for job in batch:
            try:
                result = await self._db.run(job.name, job.fn, *job.args, **job.kwargs)
            except Exception as exc:
                job.done.errback(exc)
            else:
                job.done.callback(result)
