"""Named transactions over one adbapi pool (async) or one connection (CLI, migrations).

Store code is written once as plain functions ``fn(txn, ...)`` that run in a worker thread; the
daemon runs them through :class:`Database` (``twisted.enterprise.adbapi``), the CLI through
:class:`SyncDatabase`. The name of each transaction feeds metrics and logs; serialisation
failures are retried; callbacks registered with ``txn.call_after`` run only after commit, on the
reactor thread (Synapse's ``runInteraction`` pattern). In the daemon every statement has a time
budget, a transaction can be cancelled by cancelling its Deferred, and one user holds at most a
share of the pool (see :mod:`tau.storage.budget`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from tau.clock import WALL_CLOCK, Clock
from tau.storage.breaker import NORMAL, PROBE, Breaker, CircuitOpen
from tau.storage.budget import Budget, QueryCancelled, StatementTimeout, UserShares, acting_user, in_background
from tau.storage.engines.base import Engine
from tau.storage.group import GroupCommit

log = Logger()
T = TypeVar("T")
MAX_RETRIES = 5
#: per engine, no retry once a transaction has spent this long: a SQLite "database is locked" after
#: its busy timeout (10 s) has waited out is an outage to report (503), not a race to retry five
#: more times; PostgreSQL's serialisation failures and deadlocks are always worth retrying
RETRY_BUDGET = {"sqlite": 2.0}


class Pool(Protocol):
    """What the daemon uses of ``adbapi.ConnectionPool`` (Twisted's own is not annotated)."""

    running: bool

    def start(self) -> None: ...

    def close(self) -> None: ...

    def runInteraction(self, interaction: Callable[..., Any], *args: Any, **kw: Any) -> defer.Deferred[Any]: ...


_connection_pool: Callable[..., Pool] = adbapi.ConnectionPool


def placeholders(n: int) -> str:
    """``?, ?, ?`` for an IN list (or VALUES row) of ``n`` parameters: only the count is
    formatted into SQL, never a value."""
    return ", ".join("?" * n)


class Txn:
    """A cursor that speaks ``?`` placeholders and collects after-commit callbacks."""

    def __init__(self, cursor: Any, engine: Engine, budget: Budget | None, now: float) -> None:
        self._cursor = cursor
        self.engine = engine
        self.budget = budget
        self.now = now  # when the transaction started, on the database's clock: stores stamp rows with it
        self.after_commit: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.keyring: Any = None  # tau.atrest.keyring.Keyring of the Database (stores seal user content with it)
        self.memo: dict[Any, Any] = {}  # per-transaction lookups a store repeats (e.g. a row's owner for its key)
        #: statements without results or parameters waiting to travel with the next one
        #: (``send_ahead``): one round trip for both
        self.ahead: list[str] = []
        #: writes queued by ``write_at_end``: key → (writer, items)
        self.at_end: dict[str, tuple[Callable[["Txn", list[Any]], None], list[Any]]] = {}

    def write_at_end(self, key: str, writer: Callable[["Txn", list[Any]], None], item: Any) -> None:
        """Queue ``item`` for ``writer(txn, items)``, called once with every item queued under
        ``key`` just before commit (``finish``). For writes that cannot be refused once checked:
        a group commit's jobs then share one statement. A failure there fails the transaction
        (a group commit's batch then runs its jobs one by one, each alone)."""
        entry = self.at_end.get(key)
        if entry is None:
            entry = self.at_end[key] = (writer, [])
        entry[1].append(item)

    def finish(self) -> None:
        """Before commit: the ``write_at_end`` writers, then what ``send_ahead`` still holds."""
        while self.at_end:
            writer, items = self.at_end.pop(next(iter(self.at_end)))
            writer(self, items)
        self.flush()

    def send_ahead(self, sql: str) -> None:
        """Run ``sql`` (no parameters, no rows wanted) just before the next statement, in the
        same round trip where the engine takes several statements at once (PostgreSQL); at once
        otherwise. Its error, if any, surfaces from that next statement."""
        if self.engine.multi_statement:
            self.ahead.append(sql)
        else:
            self.execute(sql)

    def flush(self) -> None:
        """Send what ``send_ahead`` still holds, now."""
        if self.ahead:
            sql, self.ahead = "; ".join(self.ahead), []
            if self.budget is not None:
                self.budget.arm()
            self._cursor.execute(sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Txn":
        if self.budget is not None:
            self.budget.arm()
        if self.ahead:  # no % in them: safe before a statement with parameters
            head, self.ahead = "; ".join(self.ahead) + "; ", []
        else:
            head = ""
        if params:
            self._cursor.execute(head + self.engine.convert(sql), tuple(params))
        else:  # no placeholders: leave any literal % alone
            self._cursor.execute(head + sql)
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.flush()
        if self.budget is not None:
            self.budget.arm()
        self._cursor.executemany(self.engine.convert(sql), [tuple(r) for r in rows])

    def fetchone(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.query_one(sql, params)
        return row[0] if row else None

    def commit_in_id_order(self, key: int) -> None:
        """Call before inserting into a table whose readers page by ``id > last seen``: every
        transaction that does so for ``key`` then takes its ids and commits one after another, so
        no id below one a reader has seen can commit later (concurrent PostgreSQL transactions
        would otherwise commit ids out of order, and the reader's cursor would skip the late one)."""
        if ("commit-order", key) in self.memo:
            return  # held since an earlier statement of this transaction
        sql = self.engine.commit_order_statement(key)
        if sql:
            self.send_ahead(sql)  # with the insert that follows: one round trip
        self.memo[("commit-order", key)] = True

    @staticmethod
    def in_list(values: Iterable[Any]) -> tuple[str, list[Any]]:
        """``("(?, ?)", [a, b])``: the parenthesised IN list for ``values`` and its parameters
        (``WHERE id IN {sql}``); callers chunk long lists (see ``tau.blobs.refstore.chunks``)."""
        params = list(values)
        return f"({placeholders(len(params))})", params

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def call_after(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the reactor thread once this transaction has committed."""
        self.after_commit.append((fn, args))


def _run_with_retries(engine: Engine, name: str, get_cursor: Callable[[], Any], commit: Callable[[], None],
                      rollback: Callable[[], None], fn: Callable[..., T], readonly: bool,
                      args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget | None = None,
                      session_timeout: float | None = None, clock: Clock = WALL_CLOCK,
                      keyring: Any = None, before_begin: Sequence[Callable[[], None]] = (),
                      before_commit: Sequence[Callable[[], None]] = ()) -> tuple[T, Txn]:
    attempt = 0
    started = time.monotonic()
    while True:
        if not readonly:
            for hook in before_begin:
                hook()
        cursor = get_cursor()
        txn = Txn(cursor, engine, budget, clock.seconds())
        txn.keyring = keyring
        try:
            engine.begin(cursor, readonly)
            if budget is not None and budget.seconds != session_timeout:
                engine.set_timeout(cursor, budget.seconds)
            result = fn(txn, *args, **kwargs)
            txn.finish()
            if budget is not None:
                budget.disarm()
            if not readonly:
                for hook in before_commit:
                    hook()
            commit()
            return result, txn
        except BaseException as exc:
            if budget is not None:
                budget.disarm()
            try:
                rollback()
            except Exception:
                pass
            if budget is not None and budget.cancelled:
                raise QueryCancelled(f"{name}: cancelled") from exc
            if budget is not None and engine.is_timeout(exc):
                raise StatementTimeout(name, budget.seconds) from exc
            attempt += 1
            retry_for = RETRY_BUDGET.get(engine.name)
            if attempt <= MAX_RETRIES and engine.is_retryable(exc) and (
                    retry_for is None or time.monotonic() - started < retry_for):
                log.debug("transaction {name} retry {n}: {exc}", name=name, n=attempt, exc=exc)
                time.sleep(0.01 * 2**attempt)
                continue
            raise


def ping(txn: Txn) -> None:
    """The cheapest statement: the database answers (health checks, the breaker's probe)."""
    txn.scalar("SELECT 1")


class Database:
    """The daemon's pool. ``await db.run("name", fn, *args)`` → ``fn(txn, *args)`` in a thread.

    ``statement_timeout`` / ``background_timeout`` (seconds, 0: none) bound each statement;
    ``user_share`` (0: half the pool, at least one) bounds one user's transactions in the pool.
    Cancelling the Deferred ``run`` returns stops the transaction (its statement is interrupted).
    While the database is unreachable ``breaker`` fails transactions at once (see
    :mod:`tau.storage.breaker`)."""

    def __init__(self, engine: Engine, reactor: Any, observe: Callable[[str, float, bool], None] | None = None,
                 pool: Pool | None = None, statement_timeout: float = 0.0,
                 background_timeout: float = 0.0, user_share: int = 0, clock: Clock | None = None,
                 keyring: Any = None) -> None:
        self.engine = engine
        self.keyring = keyring
        self._reactor = reactor
        self._clock: Clock = reactor if clock is None else clock  # txn.now: the reactor's time unless told
        self._observe = observe
        self.statement_timeout = statement_timeout
        self.background_timeout = background_timeout
        size = 1 if engine.single_connection else int(getattr(engine, "pool_max", 1) or 1)
        self.shares = UserShares(user_share or max(1, size // 2))
        if pool is None:
            module, args, kwargs = engine.pool_args()
            pool = _connection_pool(module, *args, cp_noisy=False, cp_reactor=reactor,
                                    **{**kwargs, "cp_openfun": self._opened(kwargs.get("cp_openfun"))})
        self.pool = pool
        self._session_timeout = statement_timeout
        self.breaker = Breaker()
        #: run in the transaction's thread before each write begins (no lock held yet) and just
        #: before it commits: what the rows will point at must be durable first (the blob packs'
        #: shared sync, ``tau.blobs.factory.sync_with_commits``)
        self.before_begin: list[Callable[[], None]] = []
        self.before_commit: list[Callable[[], None]] = []
        # SQLite writes through one connection; on PostgreSQL half the pool may commit at once
        # (the rest stays for reads), as the SMTP deliveries' batches do
        self.grouped = GroupCommit(self, 1 if engine.single_connection else max(1, size // 2))
        self._lanes: dict[str, GroupCommit] = {}

    def _opened(self, openfun: Callable[[Any], None] | None) -> Callable[[Any], None]:
        def opened(conn: Any) -> None:
            if openfun is not None:
                openfun(conn)
            self.engine.set_session_timeout(conn, self._session_timeout)
        return opened

    def start(self) -> None:
        self.pool.start()

    def close(self) -> None:
        if self.pool.running:
            self.pool.close()

    def run(self, name: str, fn: Callable[..., T], *args: Any, readonly: bool = False,
            **kwargs: Any) -> defer.Deferred[T]:
        started = time.monotonic()
        if self._refused():  # down a moment ago: do not queue behind the user's work or the pool
            self._timed(name, started, False)
            return defer.fail(CircuitOpen("database unavailable; try again shortly"))
        budget = Budget(self.background_timeout if in_background() else self.statement_timeout)
        user = acting_user()
        gate: defer.Deferred[Any] = self.shares.acquire(user) if user else defer.succeed(None)

        def cancel(_: Any) -> None:
            budget.cancel()
            gate.cancel()  # still queued behind the user's other work: leave the queue

        result: defer.Deferred[T] = defer.Deferred(cancel)

        def interaction(trans: adbapi.Transaction) -> tuple[T, Txn]:
            self.breaker.check()  # queued before the outage began: fail now, not a timeout later
            conn = trans._connection
            raw = conn._connection
            budget.attach(raw, self.engine.interrupt)
            self.engine.watch(raw, budget)
            try:
                return _run_with_retries(self.engine, name, lambda: trans, lambda: None, conn.rollback, fn,
                                         readonly, args, kwargs, budget, self._session_timeout, self._clock,
                                         self.keyring, self.before_begin, self.before_commit)
            except BaseException as exc:
                self.breaker.failed(exc)  # here, so the next transaction queued in this thread sees it
                raise
            finally:
                self.engine.unwatch(raw)
                budget.detach()

        def done(outcome: tuple[T, Txn]) -> T:
            out, txn = outcome
            self._timed(name, started, True)
            for cb, cb_args in txn.after_commit:  # committed: even when the caller went away
                try:
                    cb(*cb_args)
                except Exception:
                    log.failure("after-commit callback of {name} failed", name=name)
            return out

        def failed(f: Any) -> Any:
            self._timed(name, started, False)
            return f

        def forward(outcome: Any) -> None:
            if result.called:  # cancelled meanwhile: nobody waits for this any more
                return
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        def admitted(_: Any) -> None:
            if budget.cancelled:
                if user:
                    self.shares.release(user)
                return
            if self._refused():  # answered on the next turn: a user's queue drains without recursion
                d: defer.Deferred[Any] = defer.Deferred()
                self._reactor.callFromThread(d.errback, CircuitOpen("database unavailable; try again shortly"))
            else:
                d = self.pool.runInteraction(interaction)
                d.addBoth(lambda outcome: self.breaker.settle(NORMAL, outcome))
            if user:
                d.addBoth(self._release, user)
            d.addCallbacks(done, failed)
            d.addBoth(forward)

        gate.addCallbacks(admitted, lambda f: None)
        return result

    def run_grouped(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """A write acknowledged to a client (APPEND, PUT): like ``run``, but writers that arrive
        while others commit share one transaction, each in a savepoint (``tau.storage.group``)."""
        return self.grouped.run(name, fn, *args, **kwargs)

    def run_in_order(self, lane: str, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any
                     ) -> defer.Deferred[T]:
        """``run_grouped`` in a lane of its own that runs one batch at a time: each batch's
        after-commit callbacks have run before the next batch starts, so events published after
        commit leave in commit order (with ``Txn.commit_in_id_order``: in id order)."""
        group = self._lanes.get(lane)
        if group is None:
            group = self._lanes[lane] = GroupCommit(self, 1)
        return group.run(name, fn, *args, **kwargs)

    def _release(self, outcome: Any, user: str) -> Any:
        """The user's share of the pool is free again; passes ``outcome`` on."""
        self.shares.release(user)
        return outcome

    def _refused(self) -> bool:
        """True while the database is down; starts the probe that ends that when one is due."""
        if not self.breaker.is_open:
            return False
        if self.breaker.claim_probe():
            d = self.pool.runInteraction(self._probe)
            d.addBoth(lambda outcome: self.breaker.settle(PROBE, outcome))
            d.addErrback(lambda _: None)
        return True

    def _probe(self, trans: adbapi.Transaction) -> None:
        """A write transaction that changes nothing: it passes only when a write would."""
        conn = trans._connection
        _run_with_retries(self.engine, "db_probe", lambda: trans, lambda: None, conn.rollback, ping, False, (), {},
                          clock=self._clock)

    def _timed(self, name: str, started: float, ok: bool) -> None:
        if self._observe is not None:
            self._observe(name, time.monotonic() - started, ok)


class SyncDatabase:
    """One blocking connection: for the CLI, migrations and start-up checks (no reactor)."""

    def __init__(self, engine: Engine, clock: Clock = WALL_CLOCK, keyring: Any = None) -> None:
        self.engine = engine
        self.conn = engine.connect()
        self.clock = clock
        self.keyring = keyring
        self.before_begin: list[Callable[[], None]] = []  # as Database's
        self.before_commit: list[Callable[[], None]] = []

    def run(self, name: str, fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
        result, txn = _run_with_retries(self.engine, name, self.conn.cursor, self.conn.commit,
                                        self.conn.rollback, fn, readonly, args, kwargs, clock=self.clock,
                                        keyring=self.keyring, before_begin=self.before_begin,
                                        before_commit=self.before_commit)
        for cb, cb_args in txn.after_commit:
            cb(*cb_args)
        return result

    def run_grouped(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``run``: one connection has nothing to group."""
        return self.run(name, fn, *args, **kwargs)

    def run_in_order(self, lane: str, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``run``: one connection runs everything in order."""
        return self.run(name, fn, *args, **kwargs)

    def close(self) -> None:
        self.conn.close()
