"""Group commit for accepted messages: deliveries that arrive while a transaction is running
share the next one, so one commit (one WAL fsync on SQLite) covers many messages.

Why: every message must be durable before its 250 (RFC 5321 §4.1.1.4), and with many messages
for one mailbox each delivery also waits for the previous one's row locks (UIDNEXT, usage).
Batching costs no latency when idle (a lone message runs at once, alone) and under load turns
N commits into one. A batch is all-or-nothing; when it fails, its messages are retried one by
one, so one full mailbox cannot make its neighbours in the batch fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tau.storage.database import Txn

log = Logger()
MAX_BATCH = 64


@dataclass
class Job:
    """One message's rows: INBOX copies, an outbound queue row, a Sent copy."""

    local: list[str]
    remote: list[str]
    sender: str | None            # the submitting user (queue owner, Sent copy)
    mail_from: str
    key: str
    size: int
    fields: Any                   # tau.mail.store.fields.MessageFields
    message_id: str | None
    sent_copy: bool
    mailbox: str = "INBOX"        # "Junk" when the inbound checks (tau.mail.trust) say so
    origin: dict[str, str] | None = None   # on the append events: MX or submission by whom (iMIP)
    dsn: str | None = None        # RFC 3461 parameters for the queue row (dsn_params.DsnRequest.to_json)
    require_tls: bool = False     # RFC 8689 REQUIRETLS on MAIL FROM
    sieve: Any = None             # tau.mail.sieve.plan.Plan: the recipients' filters decided the copies


def deliver_job(txn: Txn, ctx: Any, job: Job) -> None:
    """The rows of one message, inside the caller's transaction (store transaction functions)."""
    from tau.mail.store import messages, queue

    if job.sieve is not None:
        from tau.mail.sieve import commit

        commit.apply(txn, ctx, job.sieve, job.key, job.size, job.fields, job.message_id, job.mail_from, job.origin)
    elif job.local:
        # a fixed lock order (by address) keeps concurrent PostgreSQL batches from deadlocking
        messages.deliver(txn, ctx, sorted(job.local), job.key, job.size, job.fields, job.mailbox, (), None, None,
                         job.origin)
    if job.remote:
        queue.enqueue(txn, job.sender, job.mail_from, job.remote, job.key, job.size, job.message_id, ctx,
                      dsn=job.dsn, require_tls=job.require_tls)
    if job.sent_copy and job.sender is not None:
        messages.deliver(txn, ctx, [job.sender], job.key, job.size, job.fields, "Sent", ("\\Seen",), None, None)


def deliver_batch(txn: Txn, ctx: Any, jobs: list[Job]) -> None:
    for job in sorted(jobs, key=lambda j: sorted(j.local)[:1]):
        deliver_job(txn, ctx, job)


class GroupCommit:
    """Queue of jobs; at most ``concurrency`` batch transactions in flight."""

    def __init__(self, db: Any, ctx: Any, concurrency: int = 1, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._ctx = ctx
        self._concurrency = max(1, concurrency)
        self._max_batch = max_batch
        self._waiting: list[tuple[Job, Deferred[None]]] = []
        self._running = 0
        self.batches = 0          # for tests and the benchmark: how many transactions ran
        self.largest = 0

    def submit(self, job: Job) -> Deferred[None]:
        """Fires once the job's rows are committed; fails with the store's exception."""
        d: Deferred[None] = Deferred()
        self._waiting.append((job, d))
        self._start()
        return d

    def _start(self) -> None:
        while self._waiting and self._running < self._concurrency:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch:]
            self._running += 1
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            Deferred.fromCoroutine(self._run(batch)).addErrback(
                lambda f: log.failure("group commit failed", failure=f))

    async def _run(self, batch: list[tuple[Job, Deferred[None]]]) -> None:
        try:
            if len(batch) > 1:
                try:
                    await self._db.run("smtp_deliver_batch", deliver_batch, self._ctx, [job for job, _ in batch])
                except Exception:
                    pass          # someone in the batch was refused: find out who, one by one
                else:
                    for _, d in batch:
                        d.callback(None)
                    return
            for job, d in batch:
                try:
                    await self._db.run("smtp_deliver", deliver_job, self._ctx, job)
                except Exception as exc:
                    d.errback(exc)
                else:
                    d.callback(None)
        finally:
            self._running -= 1
            self._start()
