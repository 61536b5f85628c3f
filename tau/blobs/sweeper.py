"""The periodic sweep of blobs no row references (left behind by kill -9 between a blob's
write and its row's commit): one node at a time, only blobs older than ``[blobs] orphan_grace``.

Each run takes the ``blob-sweep`` lease (``job_leases``) so that in a cluster one node sweeps
per interval; lists the backend's blobs older than the grace period (in a thread), drops those
some row references in bulk, and deletes each remaining one in its own short transaction under
the refcount-row protocol of ``tau.blobs.orphans.sweep_key``. The local backend's crash-left
temp files are swept too.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import TYPE_CHECKING, Any

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

from tau.blobs import orphans
from tau.storage.budget import background

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
LEASE = "blob-sweep"
BATCH = 500  # keys listed and checked per round trip
MAX_PER_RUN = 100_000  # a run stops here; the next one continues


class BlobSweeper:
    def __init__(self, registry: Registry, grace: float, interval: float) -> None:
        self.registry, self.grace, self.interval = registry, grace, interval
        self.holder = f"{secrets.token_hex(8)}"

    async def run_once(self) -> int:
        """One sweep; returns the number of blobs deleted (0 when another node holds the lease)."""
        reg = self.registry
        now = time.time()  # the wall clock: blob ages are file/object modification times
        if not await reg.db.run("blob_sweep_lease", orphans.take_lease, LEASE, self.holder, int(now),
                                max(60, int(self.interval * 0.9))):
            return 0
        backend = reg.blob_backend
        keys = await reg.run_in_thread(_list, backend, now - self.grace, MAX_PER_RUN)
        removed = 0
        for i in range(0, len(keys), BATCH):
            batch = keys[i:i + BATCH]
            used = await reg.db.run("blob_sweep_refs", orphans.referenced, batch, readonly=True)
            for key in batch:
                if key not in used and await reg.db.run("blob_sweep_key", orphans.sweep_key, backend, key):
                    removed += 1
        if hasattr(backend, "sweep_tmp"):
            removed += await reg.run_in_thread(backend.sweep_tmp)
        if hasattr(backend, "compact"):  # packs: reclaim the space of deleted small blobs
            await reg.run_in_thread(backend.compact)
        return removed

    async def tick(self) -> None:
        try:
            with background():  # maintenance: the background statement budget, no user's share
                removed = await self.run_once()
            if removed:
                log.info("removed {n} blobs no row referenced", n=removed)
        except NotImplementedError:
            pass  # a backend that cannot list its blobs
        except Exception as exc:
            from tau.storage.faults import is_unavailable

            if is_unavailable(exc):
                log.warn("blob sweep skipped: storage unavailable: {exc}", exc=exc)
            else:
                log.failure("blob sweep failed")

    def service(self) -> TimerService:
        service = TimerService(self.interval, lambda: defer.ensureDeferred(self.tick()))
        service.clock = self.registry.reactor
        service.setName("blob-sweeper")
        return service


def _list(backend: Any, cutoff: float, limit: int) -> list[str]:
    return list(itertools.islice(backend.list_older(cutoff), limit))


def blob_sweeper(registry: Registry) -> TimerService:
    """The background service ``tau.app.tap`` registers."""
    config = registry.config
    return BlobSweeper(registry, config.blobs.orphan_grace, config.blobs.sweep_interval).service()
