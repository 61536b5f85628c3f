"""Bounded database work: a time budget per statement, cancellation, a fair share of the pool.

Ten IMAP sessions of one user sending SEARCH with thousands of keys held every pooled connection
for minutes while other users' REST calls and SMTP deliveries timed out. Three rules stop that:

- every statement run through the daemon's pool has a time budget (``[database]
  statement_timeout_ms``; work inside :func:`background` gets ``background_timeout_ms``):
  PostgreSQL enforces it with ``statement_timeout``, SQLite with a progress handler; a statement
  over budget raises :class:`StatementTimeout`, which the protocol edges answer as ``NO [LIMIT]``
  (IMAP) or 503 (HTTP), never a hung pool;
- a transaction whose caller went away (the IMAP client closed the connection) is cancelled:
  ``connection.cancel()`` on PostgreSQL, ``interrupt()`` on SQLite, and it raises
  :class:`QueryCancelled`;
- the protocol edges say on whose behalf work runs (:func:`act_as`), and one user has at most
  ``[database] user_share`` transactions in the pool at once (default half the pool, at least
  one): the others wait in that user's own queue, so another user's work is next in the pool's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from twisted.internet import defer

_user: ContextVar[str | None] = ContextVar("tau_db_user", default=None)
_background: ContextVar[bool] = ContextVar("tau_db_background", default=False)


class StatementTimeout(Exception):
    """A statement ran past its time budget (and was stopped); the work may be retried later."""

    code = "query_timeout"

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"{name}: a statement ran longer than {seconds:g} s and was stopped")
        self.name = name
        self.seconds = seconds


class QueryCancelled(Exception):
    """The transaction was cancelled because whoever asked for it went away."""


def act_as(user: str | None) -> None:
    """Database work started from here on (this task's context) runs on behalf of ``user``."""
    _user.set(user.lower() if user else None)


def acting_user() -> str | None:
    return _user.get()


@contextmanager
def background() -> Iterator[None]:
    """Work started inside gets the background time budget (maintenance, queues), not a user."""
    token, user_token = _background.set(True), _user.set(None)
    try:
        yield
    finally:
        _user.reset(user_token)
        _background.reset(token)


def in_background() -> bool:
    return _background.get()


class Budget:
    """One transaction's statement budget and cancellation flag, shared by the reactor thread (which
    cancels) and the pool thread (which runs the statements)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cancelled = False
        self._armed = False
        self._deadline = float("inf")
        self._lock = threading.Lock()
        self._conn: Any = None
        self._interrupt: Any = None

    def arm(self) -> None:
        """A statement starts: it may run ``seconds`` from now (raises if cancelled meanwhile)."""
        if self.cancelled:
            raise QueryCancelled("the client went away")
        self._deadline = time.monotonic() + self.seconds if self.seconds > 0 else float("inf")
        self._armed = True

    def disarm(self) -> None:
        """Commit or rollback: never cut those short."""
        self._armed = False
        self._deadline = float("inf")

    def expired(self) -> bool:
        return self._armed and (self.cancelled or time.monotonic() > self._deadline)

    def attach(self, conn: Any, interrupt: Any) -> None:
        """The pool thread runs this transaction on ``conn``; ``interrupt(conn)`` stops a statement."""
        with self._lock:
            if self.cancelled:
                raise QueryCancelled("the client went away")
            self._conn, self._interrupt = conn, interrupt

    def detach(self) -> None:
        with self._lock:
            self._conn = self._interrupt = None

    def cancel(self) -> None:
        """From the reactor: stop the running statement, and any later one of this transaction."""
        with self._lock:
            self.cancelled = True
            if self._conn is not None:
                try:
                    self._interrupt(self._conn)
                except Exception:  # noqa: BLE001 - the statement ends by itself anyway
                    pass


class UserShares:
    """At most ``share`` transactions of one user in the pool at once; the rest queue per user."""

    def __init__(self, share: int) -> None:
        self.share = max(1, share)
        self._gates: dict[str, defer.DeferredSemaphore] = {}

    def acquire(self, user: str) -> defer.Deferred[Any]:
        gate = self._gates.get(user)
        if gate is None:
            gate = self._gates[user] = defer.DeferredSemaphore(self.share)
        return gate.acquire()

    def release(self, user: str) -> None:
        gate = self._gates.get(user)
        if gate is None:
            return
        gate.release()  # may run the next waiter's work, and its release, right here
        if gate.tokens == gate.limit and not gate.waiting and self._gates.get(user) is gate:
            del self._gates[user]

    def in_use(self, user: str) -> int:
        gate = self._gates.get(user)
        return gate.limit - gate.tokens if gate is not None else 0
