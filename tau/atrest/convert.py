"""The background job that seals rows still in plaintext or under a retired data key.

Each store whose rows hold user content provides an ``AtRestTable`` (listed by the registry's
``atrest_tables``). The converter, one node at a time (the ``atrest-convert`` lease), asks each
table for rows not sealed under their user's active key and has it seal a batch per short
transaction, so the server keeps serving while a migration or a rotation runs; it resumes
wherever it stopped (the rows' own state is the cursor), and doing it twice changes nothing.
When every table reports nothing pending, data keys retired longer ago than any cache can hold
them are dropped for good, and epochs no key uses any more with them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from twisted.application.internet import TimerService
from twisted.logger import Logger

from tau.atrest import store
from tau.atrest.keyring import Keyring
from tau.blobs.orphans import take_lease
from tau.net.periodic import periodic
from tau.storage.budget import background
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
LEASE = "atrest-convert"
BATCH = 200
MAX_BATCHES_PER_RUN = 10_000
RETIRED_GRACE = 600  # seconds: well past the keyring's cache ttl and a statement's longest run


class AtRestTable(Protocol):
    """A table (or a group of them) whose user content the converter keeps sealed."""

    name: str

    def pending(self, txn: Txn) -> int:
        """How many rows are in plaintext or sealed under a data key that is not their user's active one."""
        ...

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        """Seal (or re-seal) up to ``limit`` such rows under the active key; returns how many."""
        ...


class Converter:
    def __init__(self, registry: Registry, tables: Sequence[AtRestTable], interval: float = 60.0) -> None:
        self.registry, self.tables, self.interval = registry, list(tables), interval
        self.holder = secrets.token_hex(8)
        self.pending: dict[str, int] = {}

    async def run_once(self) -> dict[str, int]:
        """Seal what is pending (up to a bound per run); returns rows converted per table
        (empty when another node holds the lease)."""
        reg = self.registry
        keyring = reg.keyring
        if not await reg.db.run("atrest_lease", take_lease, LEASE, self.holder, int(reg.reactor.seconds()),
                                max(120, int(self.interval * 2))):
            return {}
        await reg.db.run("atrest_rewrap_stale", keyring.rewrap_stale_txn)
        done: dict[str, int] = {}
        for table in self.tables:
            for _ in range(MAX_BATCHES_PER_RUN):
                n = await reg.db.run(f"atrest_convert_{table.name}", table.convert, keyring, BATCH)
                if not n:
                    break
                done[table.name] = done.get(table.name, 0) + n
                reg.metrics.atrest_converted.labels(table.name).inc(n)
        await self.refresh()
        if not any(self.pending.values()):
            dropped = await reg.db.run("atrest_drop_retired", _drop_retired, int(reg.reactor.seconds()) - RETIRED_GRACE)
            if dropped:
                log.info("at-rest: dropped {n} retired data keys (no row is sealed under them)", n=dropped)
        return done

    async def refresh(self) -> dict[str, int]:
        """Pending rows per table, also into the ``tau_atrest_pending_rows`` gauge."""
        for table in self.tables:
            self.pending[table.name] = await self.registry.db.run(
                f"atrest_pending_{table.name}", table.pending, readonly=True)
            self.registry.metrics.atrest_pending.labels(table.name).set(self.pending[table.name])
        return dict(self.pending)

    async def tick(self) -> int:
        """One periodic run under the background statement budget; logs what it sealed."""
        with background():
            done = await self.run_once()
        if done:
            log.info("at-rest: sealed {rows} rows ({tables}); pending {pending}", rows=sum(done.values()),
                     tables=", ".join(f"{k} {v}" for k, v in sorted(done.items())), pending=self.pending)
        return 0

    def service(self) -> TimerService:
        return periodic(self.registry, "atrest-converter", self.interval, self.tick, "",
                        "at-rest conversion failed", on_stop=self.release)

    async def release(self) -> None:
        """Give the lease up (at shutdown): a restarted or another node resumes at once instead
        of waiting out the lease."""
        try:
            await self.registry.db.run("atrest_release", store.release_lease, LEASE, self.holder)
        except Exception:  # noqa: BLE001 - best effort: the lease expires anyway
            log.failure("at-rest: could not release the converter lease")


def _drop_retired(txn: Txn, retired_before: int) -> int:
    if store.retired_after(txn, retired_before):
        return 0  # a rotation too recent: a cached old key may still be writing
    dropped = store.drop_retired_data_keys(txn)
    store.drop_unused_epochs(txn)
    return dropped


def pending_total(txn: Txn, tables: Sequence[AtRestTable]) -> dict[str, int]:
    """For ``tau check`` and ``tau keys status``: pending rows per table, in one transaction."""
    return {table.name: table.pending(txn) for table in tables}
