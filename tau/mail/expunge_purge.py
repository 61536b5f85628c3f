"""The periodic purge of expunged messages (``tau.mail.store.purge``): every few minutes, on one node.

Each run takes the ``mail-expunge-purge`` lease (``job_leases``, as the blob sweeper does) so that
in a cluster one node does the work per interval, then purges in batches until nothing is due.
The lease only saves duplicate work: the purge itself is safe to run on several nodes at once
(rows go with ``DELETE ... RETURNING`` in the transaction that drops their blob references).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from twisted.application.internet import TimerService

from tau.blobs.orphans import take_lease
from tau.net.periodic import periodic
from tau.storage.budget import background
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

LEASE = "mail-expunge-purge"
INTERVAL = 300.0
BATCH = 1000
MAX_BATCHES = 100  # a run stops here; the next one continues


class ExpungePurger:
    def __init__(self, registry: Registry, interval: float = INTERVAL) -> None:
        self.registry, self.interval = registry, interval
        self.holder = secrets.token_hex(8)

    async def run_once(self) -> int:
        """One run; returns the number of messages purged (0 when another node holds the lease)."""
        reg = self.registry
        with background():  # maintenance: the background statement budget, no user's share
            if not await reg.db.run("mail_purge_lease", _lease, self.holder, max(60, int(self.interval * 0.9))):
                return 0
            purged = 0
            for _ in range(MAX_BATCHES):
                n = int(await reg.mail_store.purge_expunged(BATCH))
                purged += n
                if n < BATCH:
                    break
            return purged


def _lease(txn: Txn, holder: str, ttl: int) -> bool:
    return take_lease(txn, LEASE, holder, int(txn.now), ttl)


def expunge_purger(registry: Registry) -> TimerService:
    """The background service ``tau.app.tap`` registers."""
    job = ExpungePurger(registry)
    return periodic(registry, "mail-expunge-purge", job.interval, job.run_once,
                    "purged {n} expunged messages", "purging expunged messages failed")
