"""A circuit breaker for the database: an outage is answered at once, not one busy timeout each.

During a SQLite lock held by another process every transaction waited its full busy timeout in
turn on the one connection (answers came one per 10 s; most clients gave up without one), and a
PostgreSQL host that went away made each pooled transaction find that out for itself. Once a
transaction fails because the database is unreachable (:func:`is_outage`), the breaker opens:
transactions already queued and new ones fail at once with :class:`DatabaseUnavailable` (503 +
``Retry-After``, IMAP ``NO [UNAVAILABLE]``, SMTP ``451 4.3.0``). A request arriving while it is
open starts a probe when none ran for :data:`PROBE_INTERVAL` seconds: one write transaction that
changes nothing (on SQLite it must get the write lock), never a client's work; when a probe reaches
the database the breaker closes again. Statement timeouts and cancelled queries never open it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from tau.storage.budget import QueryCancelled, StatementTimeout
from tau.storage.engines.base import DatabaseUnavailable

log = Logger()

#: seconds between two probes while the database is down
PROBE_INTERVAL = 1.0
NORMAL, PROBE = "normal", "probe"

#: PostgreSQL error classes that are the server or the link, never the statement (08: connection
#: exception, 57P0x: shutdown / cannot connect now, 53300: too many connections)
_PG_DOWN = ("08", "57P01", "57P02", "57P03", "53300")
_SQLITE_DOWN = ("database is locked", "database table is locked", "disk i/o error", "unable to open database",
                "readonly database", "locking protocol")


class CircuitOpen(DatabaseUnavailable):
    """Refused without trying: the database was unreachable a moment ago."""


def _pg_down(exc: BaseException) -> bool | None:
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return None
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    if isinstance(exc, psycopg2.OperationalError):
        code = getattr(exc, "pgcode", None)
        return code is None or code.startswith(_PG_DOWN)
    return None


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database itself cannot be reached (not that a statement failed)."""
    from twisted.enterprise.adbapi import ConnectionLost

    if isinstance(exc, (StatementTimeout, QueryCancelled)):
        return False  # one request's query was stopped: the database is fine
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            return False
        if isinstance(current, (DatabaseUnavailable, ConnectionLost)):
            return True
        if isinstance(current, sqlite3.OperationalError):
            return any(text in str(current).lower() for text in _SQLITE_DOWN)
        down = _pg_down(current)
        if down is not None:
            return down
        current = current.__cause__ or current.__context__
    return False


class Breaker:
    """Closed (database up) or open (down since ``down_since``); thread-safe.

    While open every transaction is refused with :class:`CircuitOpen`; :meth:`claim_probe` hands
    out the one probe (a dedicated write transaction, never a client's) at most every
    ``interval`` seconds, and :meth:`settle` closes the breaker when a probe reached the database."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, interval: float = PROBE_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._next_probe = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.down_since is not None

    def check(self) -> None:
        """Raise :class:`CircuitOpen` while the database is down (before any SQL is sent)."""
        if self.down_since is not None:
            raise CircuitOpen("database unavailable; try again shortly")

    def claim_probe(self) -> bool:
        """True (once per interval, one at a time) when the caller should run the probe now."""
        with self._lock:
            if self.down_since is None or self._probing or self._clock() < self._next_probe:
                return False
            self._probing = True
            return True

    def failed(self, exc: BaseException) -> None:
        """A transaction failed with ``exc`` (called in its worker thread, before the next one)."""
        self._record(NORMAL, exc)

    def settle(self, role: str, outcome: Any) -> Any:
        """Record how a transaction (or, ``role`` PROBE, the probe) ended; passes ``outcome`` on."""
        self._record(role, outcome.value if isinstance(outcome, Failure) else None)
        return outcome

    def _record(self, role: str, exc: BaseException | None) -> None:
        down = exc is not None and not isinstance(exc, CircuitOpen) and is_outage(exc)
        with self._lock:
            if role == PROBE:
                self._probing = False
            if down and (role == PROBE or self.down_since is None):
                if self.down_since is None:
                    self.down_since = self._clock()
                    log.warn("database unavailable ({error}): refusing at once, probing every {s:g} s",
                             error=str(exc)[:200], s=self._interval)
                self._next_probe = self._clock() + self._interval
            elif role == PROBE and not down and self.down_since is not None:
                log.info("database available again after {s:.1f} s", s=self._clock() - self.down_since)
                self.down_since = None
