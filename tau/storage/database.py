"""Named transactions over one adbapi pool (async) or one connection (CLI, migrations).

Store code is written once as plain functions ``fn(txn, ...)`` that run in a worker thread; the
daemon runs them through :class:`Database` (``twisted.enterprise.adbapi``), the CLI through
:class:`SyncDatabase`. The name of each transaction feeds metrics and logs; serialisation
failures are retried; callbacks registered with ``txn.call_after`` run only after commit, on the
reactor thread (Synapse's ``runInteraction`` pattern).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger

from tau.storage.engines.base import Engine

log = Logger()
T = TypeVar("T")
MAX_RETRIES = 5
#: per engine, no retry once a transaction has spent this long: a SQLite "database is locked" after
#: its busy timeout (10 s) has waited out is an outage to report (503), not a race to retry five
#: more times; PostgreSQL's serialisation failures and deadlocks are always worth retrying
RETRY_BUDGET = {"sqlite": 2.0}


class Txn:
    """A cursor that speaks ``?`` placeholders and collects after-commit callbacks."""

    def __init__(self, cursor: Any, engine: Engine) -> None:
        self._cursor = cursor
        self.engine = engine
        self.after_commit: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Txn":
        if params:
            self._cursor.execute(self.engine.convert(sql), tuple(params))
        else:  # no placeholders: leave any literal % alone
            self._cursor.execute(sql)
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(self.engine.convert(sql), [tuple(r) for r in rows])

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.query_one(sql, params)
        return row[0] if row else None

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def call_after(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the reactor thread once this transaction has committed."""
        self.after_commit.append((fn, args))


def _run_with_retries(engine: Engine, name: str, get_cursor: Callable[[], Any], commit: Callable[[], None],
                      rollback: Callable[[], None], fn: Callable[..., T], readonly: bool,
                      args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[T, Txn]:
    attempt = 0
    started = time.monotonic()
    while True:
        cursor = get_cursor()
        txn = Txn(cursor, engine)
        try:
            engine.begin(cursor, readonly)
            result = fn(txn, *args, **kwargs)
            commit()
            return result, txn
        except BaseException as exc:
            try:
                rollback()
            except Exception:
                pass
            attempt += 1
            budget = RETRY_BUDGET.get(engine.name)
            if attempt <= MAX_RETRIES and engine.is_retryable(exc) and (
                    budget is None or time.monotonic() - started < budget):
                log.debug("transaction {name} retry {n}: {exc}", name=name, n=attempt, exc=exc)
                time.sleep(0.01 * 2**attempt)
                continue
            raise


class Database:
    """The daemon's pool. ``await db.run("name", fn, *args)`` → ``fn(txn, *args)`` in a thread."""

    def __init__(self, engine: Engine, reactor: Any, observe: Callable[[str, float, bool], None] | None = None,
                 pool: adbapi.ConnectionPool | None = None) -> None:
        self.engine = engine
        self._reactor = reactor
        self._observe = observe
        if pool is None:
            module, args, kwargs = engine.pool_args()
            pool = adbapi.ConnectionPool(module, *args, cp_noisy=False, cp_reactor=reactor, **kwargs)
        self.pool = pool

    def start(self) -> None:
        self.pool.start()

    def close(self) -> None:
        if self.pool.running:
            self.pool.close()

    def run(self, name: str, fn: Callable[..., T], *args: Any, readonly: bool = False,
            **kwargs: Any) -> defer.Deferred[T]:
        started = time.monotonic()

        def interaction(trans: adbapi.Transaction) -> tuple[T, Txn]:
            conn = trans._connection
            return _run_with_retries(self.engine, name, lambda: trans, lambda: None,
                                     conn.rollback, fn, readonly, args, kwargs)

        d = self.pool.runInteraction(interaction)

        def done(outcome: tuple[T, Txn]) -> T:
            result, txn = outcome
            self._timed(name, started, True)
            for cb, cb_args in txn.after_commit:
                try:
                    cb(*cb_args)
                except Exception:
                    log.failure("after-commit callback of {name} failed", name=name)
            return result

        def failed(f: Any) -> Any:
            self._timed(name, started, False)
            return f

        d.addCallbacks(done, failed)
        return d

    def _timed(self, name: str, started: float, ok: bool) -> None:
        if self._observe is not None:
            self._observe(name, time.monotonic() - started, ok)


class SyncDatabase:
    """One blocking connection: for the CLI, migrations and start-up checks (no reactor)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn = engine.connect()

    def run(self, name: str, fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
        result, txn = _run_with_retries(self.engine, name, self.conn.cursor, self.conn.commit,
                                        self.conn.rollback, fn, readonly, args, kwargs)
        for cb, cb_args in txn.after_commit:
            cb(*cb_args)
        return result

    def close(self) -> None:
        self.conn.close()
