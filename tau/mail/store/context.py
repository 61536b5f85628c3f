"""What transaction functions need beyond the Txn: blobs (thread side), the bus, the quota default.

Transaction functions run in a database thread and may be retried, so nothing here has effects
that a retry would duplicate: events are queued with ``txn.call_after`` (published only after
commit, on the reactor thread) and blob writes are content-addressed, hence idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.bus import events
from tau.storage.database import Txn

TOPIC = events.MAILBOX_CHANGED


@dataclass
class StoreContext:
    #: the blocking blob store (``registry.blobs.sync``): used from the database thread only
    blobs: Any
    #: ``publish(topic, payload)``; called after commit
    bus: Any
    #: ``[limits] quota_bytes`` (0: unlimited)
    default_quota: int
    #: ``fn(keys)`` run after commit with blob keys whose last reference went (garbage collection)
    collect: Any = None
    #: ``registry.keyring`` (tau.atrest): message text is sealed under the owner's data key
    keyring: Any = None

    def notify(self, txn: Txn, user: str, mailbox_id: int, mailbox: str, kind: str,
               uids: Sequence[int] = (), modseq: int = 0, **extra: Any) -> None:
        """Publish ``mailbox.changed`` once ``txn`` commits (api.py module docstring)."""
        payload = {"user": user, "mailbox_id": mailbox_id, "mailbox": mailbox, "kind": kind,
                   "uids": list(uids), "modseq": modseq, **extra}
        txn.call_after(self.bus.publish, TOPIC, payload)

    def collect_after(self, txn: Txn, keys: Sequence[str]) -> None:
        """Garbage-collect these blobs after commit (they may be referenced again by then:
        the collector re-checks under a row lock)."""
        if keys and self.collect is not None:
            txn.call_after(self.collect, list(keys))
