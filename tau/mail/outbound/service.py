"""The delivery worker: a Twisted ``Service`` that empties ``outbound_queue``.

Loop: claim due rows in batches (``rows.claim``; leases make a crashed worker's rows come back),
up to ``PREFETCH`` more than can run, so that a claim is one transaction for many rows; a claimed
row waiting for a free slot is started only within half its lease, else given back. Sign once
with DKIM (the signature is stored on the row so a retry sends the same bytes), group the pending
recipients by domain, deliver each group (``transfer.Transfer``, which reuses SMTP sessions) under
a per-domain connection limit, then hand the outcome to the ``recorder.Recorder``, which commits
outcomes, DSNs for the sender (``notify``, ``dsn.build``) and the next claim together in few transactions.
Retries back off exponentially (``retry_base * 2**attempts``, capped at ``retry_max``) until
``lifetime``; a delay notice goes out once after ``delay_warning``. While the SMTP listeners are
accepting mail, deliveries start at a capped rate (``pacing.Pacer``): acceptance comes first.

Delivery is at least once: a crash between the peer's 250 and our commit resends that one
message (RFC 5321 §6.1 accepts duplicates over loss); everything recorded in ``outbound_sent``
is never sent again, whichever row carries it.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tau.mail.outbound import notify
from tau.mail.outbound.logline import log_attempt
from tau.mail.outbound.mtasts import MTASTS
from tau.mail.outbound.pacing import Pacer
from tau.mail.outbound.recorder import Job, Recorder
from tau.mail.outbound.transfer import Extra, Outcome, Settings, Transfer
from tau.mail.smtp.dsn_params import DsnRequest
from tau.mail.store import queue as rows  # the queue's rows: claim, record, release

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
IN_MEMORY = 4 * 1024 * 1024          # messages up to this size are read once and kept for the attempt
PREFETCH = 32                        # rows claimed ahead of free slots (at least ``concurrency``)
UNRECORDED = 4                       # attempts done but not committed, at most this × concurrency



def _poll_failed(failure: Any) -> None:
    """A database outage is waited out (the next poll tries again); anything else is a bug."""
    from tau.storage.faults import is_unavailable

    if is_unavailable(failure.value):
        log.warn("outbound poll: storage unavailable ({error})", error=str(failure.value)[:200])
    else:
        log.failure("outbound poll failed", failure)

class OutboundService(Service):
    name = "outbound"

    def __init__(self, registry: Registry, store: Any) -> None:
        self.registry = registry
        self.store = store
        self.reactor = registry.reactor
        cfg = registry.config.outbound
        self.cfg = cfg
        self.dns = registry.mail_dns
        self.mtasts = MTASTS(self.reactor, self.dns, cfg.tls_ca_file, cfg.mta_sts_host)
        self.transfer = Transfer(self.reactor, self.dns, self.mtasts, Settings.from_config(registry.config))
        self.hostname = registry.config.tau.hostname
        self._domains: dict[str, defer.DeferredSemaphore] = {}
        self._inflight: dict[int, defer.Deferred[None]] = {}
        self._ready: deque[tuple[rows.Claimed, set[str], float]] = deque()   # claimed, not started yet
        self._loop: LoopingCall | None = None
        self._polling = False
        self._again = False
        self._reclaimed_at = 0.0
        self._signer: Any = None
        self._pacer = Pacer(self.reactor, registry.mail_activity)
        self._resume: Any = None
        self._recorder = Recorder(self.reactor, registry.db, self.store, flushed=self._flushed,
                                  delay=self._pacer.flush_delay)
        self.delivered = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        single_node = getattr(self.registry.db.engine, "single_connection", False)
        self._reclaimed_at = time.monotonic()
        d = self.registry.db.run("outbound_reclaim", rows.reclaim, int(self.registry.clock.seconds()), single_node)
        d.addErrback(lambda f: log.failure("reclaiming outbound rows failed", f))
        d.addBoth(lambda _: self._start_loop())

    def _start_loop(self) -> None:
        if not self.running:
            return
        self._loop = LoopingCall(self.kick)
        self._loop.clock = self.reactor
        self._loop.start(self.cfg.poll_interval, now=True)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._resume is not None and self._resume.active():
            self._resume.cancel()
        waits: list[defer.Deferred[Any]] = list(self._inflight.values())
        if self._ready:                       # claimed but never tried: back to the queue at once
            ids = [row.id for row, _, _ in self._ready]
            self._ready.clear()
            waits.append(self.registry.db.run("outbound_release", rows.release, ids))
        self.transfer.close()
        if not waits and not self._recorder.pending:
            return None
        waiting = defer.DeferredList(waits, consumeErrors=True)
        waiting.addBoth(lambda _: self._recorder.drain())
        timeout = self.reactor.callLater(5, waiting.cancel)
        waiting.addBoth(lambda _: timeout.active() and timeout.cancel())
        return waiting

    # -- the loop -----------------------------------------------------------------------------

    def kick(self) -> None:
        """Look for due rows now (new mail was queued, or a delivery finished)."""
        if not self.running:
            return
        self._start_ready()
        if self._polling:
            self._again = True
            return
        prefetch = max(PREFETCH, self.cfg.concurrency)
        want = self.cfg.concurrency + prefetch - len(self._inflight) - len(self._ready)
        if want <= 0 or len(self._ready) > prefetch // 2:     # refill in batches: one claim, many rows
            return
        self._polling = True
        d = defer.Deferred.fromCoroutine(self._poll(want))
        d.addErrback(_poll_failed)
        d.addBoth(self._polled)

    def _polled(self, _: Any) -> None:
        self._polling = False
        if self._again:
            self._again = False
            self.kick()

    async def _poll(self, want: int) -> None:
        lease = self.cfg.lease
        reclaim = time.monotonic() - self._reclaimed_at >= min(lease, self.cfg.poll_interval)
        if reclaim:
            self._reclaimed_at = time.monotonic()
        claimed = await self._recorder.claim(want, lease, reclaim)
        if not self.running:                  # stopped meanwhile: give them back
            if claimed:
                await self.registry.db.run("outbound_release", rows.release, [row.id for row, _ in claimed])
            return
        # a row may wait here for a free slot; it is only started well within its lease
        start_by = time.monotonic() + lease / 2
        self._ready.extend((row, skip, start_by) for row, skip in claimed)
        self._start_ready()
        if len(claimed) == want:
            self._again = True

    def _start_ready(self) -> None:
        if not self.running:
            return
        stale: list[int] = []
        while (self._ready and len(self._inflight) < self.cfg.concurrency
               and self._recorder.pending < UNRECORDED * self.cfg.concurrency):
            wait = self._pacer.take()
            if wait > 0:                         # SMTP is accepting mail: it comes first (pacing.py)
                if self._resume is None or not self._resume.active():
                    self._resume = self.reactor.callLater(wait, self._start_ready)
                break
            row, skip, start_by = self._ready.popleft()
            if time.monotonic() > start_by:
                stale.append(row.id)
                continue
            d = defer.Deferred.fromCoroutine(self._process(row, skip))
            self._inflight[row.id] = d
            d.addErrback(lambda f, qid=row.id: log.failure("outbound delivery of {id} failed", f, id=qid))
            d.addBoth(self._finished, row.id)
        if stale:
            d = self.registry.db.run("outbound_release", rows.release, stale)
            d.addErrback(lambda f: log.failure("releasing outbound rows failed", f))

    def _flushed(self) -> None:
        """Outcomes were committed: rows held back while too many waited for that can start."""
        if self.running:
            self._start_ready()

    def _finished(self, _: Any, queue_id: int) -> None:
        self._inflight.pop(queue_id, None)
        self.kick()

    # -- one row ------------------------------------------------------------------------------

    async def _process(self, row: rows.Claimed, skip: set[str]) -> None:
        now = int(self.registry.clock.seconds())
        result = rows.Result(row)
        for rcpt in row.pending():
            if rcpt.lower() in skip:
                result.outcomes[rcpt] = ["sent", 250, "2.0.0 already delivered (Message-ID journal)", ""]
        pending = [r for r in row.pending() if r not in result.outcomes]
        message: bytes | None = None
        if pending and row.size <= IN_MEMORY:
            message = await self.registry.blobs.read(row.blob_key)
        prefix = (row.signed_headers or "").encode()
        if pending and row.signed_headers is None and self.registry.config.dkim.sign:
            signed = await self._sign(row, message)
            if signed:
                result.signed_headers = signed.decode("ascii")
                prefix = signed
        groups: dict[str, list[str]] = {}
        for rcpt in pending:
            domain = "" if self.cfg.smarthost else rcpt.rpartition("@")[2].lower()
            groups.setdefault(domain, []).append(rcpt)
        eight_bit = message is None or not message.isascii()
        size = row.size + len(prefix)
        outcomes = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(self._group(domain, row, rcpts, size, eight_bit, prefix, message))
             for domain, rcpts in groups.items()], consumeErrors=True)
        relayed: set[str] = set()              # sent to an MX that does not speak DSN (RFC 3461 §6.2.6)
        sessions: dict[str, tuple[str, str]] = {}      # rcpt → (relay IP, TLS version), for the log line
        for (ok, value), rcpts in zip(outcomes, groups.values(), strict=True):
            if not ok:
                log.failure("delivery to {rcpts} failed", value, rcpts=rcpts)
                value = [Outcome(r, "retry", 451, "4.3.0 internal error") for r in rcpts]
            for out in value:
                result.outcomes[out.rcpt] = [out.status, out.code, out.text, out.remote]
                sessions[out.rcpt] = (out.relay_ip, out.tls)
                if out.status == "sent" and not out.dsn_passed:
                    relayed.add(out.rcpt)
        await self._record(row, result, now, message, relayed, sessions)

    async def _group(self, domain: str, row: rows.Claimed, rcpts: list[str], size: int, eight_bit: bool,
                     prefix: bytes, message: bytes | None) -> list[Outcome]:
        sem = self._domains.get(domain)
        if sem is None:
            sem = self._domains[domain] = defer.DeferredSemaphore(self.cfg.max_per_domain)
        await sem.acquire()
        try:
            target = domain or rcpts[0].rpartition("@")[2].lower()
            return await self.transfer.deliver(target, row.mail_from, rcpts, size, eight_bit,
                                               lambda: self._source(row, prefix, message),
                                               Extra(DsnRequest.from_json(row.dsn), row.require_tls))
        finally:
            sem.release()

    async def _source(self, row: rows.Claimed, prefix: bytes, message: bytes | None) -> AsyncIterator[bytes]:
        if prefix:
            yield prefix
        if message is not None:
            yield message
            return
        async for chunk in self.registry.blobs.open(row.blob_key):
            yield chunk

    async def _sign(self, row: rows.Claimed, message: bytes | None) -> bytes:
        if self._signer is None:
            from tau.mail.trust.signer import Signer

            self._signer = Signer(self.registry)
        return await self._signer.sign_blob(row.mail_from, row.blob_key, message)

    # -- recording ----------------------------------------------------------------------------

    async def _record(self, row: rows.Claimed, result: rows.Result, now: int, message: bytes | None,
                      relayed: set[str], sessions: dict[str, tuple[str, str]] | None = None) -> None:
        """Outcomes, retry time, and the report the sender asked for (``notify``: RFC 3461)."""
        lifetime = self.cfg.lifetime
        state = {**row.state, **result.outcomes}
        retrying = [r for r in row.rcpt_to if state.get(r, ["pending"])[0] == "retry"]
        if retrying and now - row.created_at >= lifetime:
            for rcpt in retrying:
                status, code, text, remote = (state[rcpt] + ["", "", "", ""])[:4]
                result.outcomes[rcpt] = ["failed", code, f"4.4.7 Delivery time expired; last error: {text}", remote]
            retrying = []
        if retrying:
            delay = min(self.cfg.retry_max, self.cfg.retry_base * 2 ** row.attempts)
            result.next_attempt_at = now + max(1, int(delay * random.uniform(0.9, 1.1)))
        log_attempt(row, result.outcomes, sessions or {}, now, self.registry.metrics)
        failed = [(r, int(s[1] or 0), str(s[2]), str(s[3] if len(s) > 3 else ""))
                  for r, s in result.outcomes.items() if s[0] == "failed"]
        delayed: list[notify.Entry] = []
        if (not failed and retrying and not row.warned and self.cfg.delay_warning
                and now - row.created_at >= self.cfg.delay_warning):
            result.warned = True
            delayed = [(r, int(state[r][1] or 0), str(state[r][2]), str(state[r][3] if len(state[r]) > 3 else ""))
                       for r in retrying]
        request = DsnRequest.from_json(row.dsn)
        entries, actions = notify.select(request, failed, delayed,
                                         [(r, o[1], o[2], o[3]) for r, o in result.outcomes.items()
                                          if o[0] == "sent" and r in relayed])
        report = None
        if entries and row.mail_from:
            raw = await notify.build(self.registry, self.hostname, row.mail_from, request, entries, actions,
                                     row.blob_key, row.size, message, arrival=row.created_at,
                                     retry_until=row.created_at + lifetime)
            report = await self._prepare_report(raw)
        sent = sum(1 for s in result.outcomes.values() if s[0] == "sent")
        d = self._recorder.record(Job(result, row.mail_from, report))
        d.addCallback(self._recorded, sent)
        d.addErrback(lambda f: log.failure("recording the attempt of {id} failed (retried when its lease ends)",
                                           f, id=row.id))
        if report is not None:                             # collected only if nothing took it
            d.addBoth(lambda _: defer.Deferred.fromCoroutine(self.store.discard_blob(report[0])))

    def _recorded(self, _: Any, sent: int) -> None:
        self.delivered += sent

    async def _prepare_report(self, raw: bytes) -> tuple[str, int, Any]:
        from tau.mail.store.fields import prepare

        info = await self.registry.blobs.put(raw)
        fields = await self.registry.run_in_thread(prepare, None, raw)
        return info.key, info.size, fields


def install(registry: Registry, host: Any) -> None:
    host.add_service(registry.outbound)
    registry.services["outbound"] = "ok"

    async def queue_depth() -> None:
        """``tau_mail_queue_messages{state}``, read at each scrape."""
        counts = await registry.db.run("metrics_queue_counts", rows.counts, readonly=True)
        for state in rows.STATES:
            registry.metrics.mail_queue.labels(state).set(counts.get(state, 0))

    registry.metrics.add_refresher(queue_depth)
