"""Named transactions on both engines: ``?`` placeholders, commit/rollback, after-commit callbacks,
retries — through the CLI's SyncDatabase and the daemon's adbapi-backed Database."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.python.failure import Failure

from tau.storage.database import Database, SyncDatabase, Txn
from tests.support.harness import ThreadedMemoryReactorClock, resolve


class SynchronousThreadPool:
    """adbapi's thread pool, running each interaction at once on the calling thread."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def callInThreadWithCallback(self, on_result: Any, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class Boom(Exception):
    pass


def pooled_database(registry: Any) -> Database:
    """The daemon's Database class on a real adbapi ConnectionPool (synchronous threads)."""
    observed: list[tuple[str, bool]] = []
    db = Database(registry.engine, ThreadedMemoryReactorClock(), observe=lambda n, s, ok: observed.append((n, ok)),
                  clock=registry.clock)
    db.pool.threadpool = SynchronousThreadPool()
    db.start()
    db.observed = observed
    return db


@pytest.fixture
def pooled(registry: Any) -> Any:
    db = pooled_database(registry)
    yield db
    db.close()


@pytest.fixture(params=["sync", "pooled"])
def db(request: pytest.FixtureRequest, registry: Any) -> Any:
    """The CLI's SyncDatabase and the daemon's pooled Database, on each engine."""
    if request.param == "sync":
        yield registry.db.sync
        return
    db = pooled_database(registry)
    yield db
    db.close()


def run(db: Any, name: str, fn: Any, *args: Any) -> Any:
    out = db.run(name, fn, *args)
    return resolve(out) if not isinstance(db, SyncDatabase) else out


def count_domains(txn: Txn, name: str) -> int:
    return int(txn.scalar("SELECT COUNT(*) FROM domains WHERE name = ?", (name,)))


def insert_domain(txn: Txn, name: str) -> None:
    txn.execute("INSERT INTO domains (name, created_at) VALUES (?, ?)", (name, 0))


def test_percent_and_question_marks_in_values_are_data(db: Any) -> None:
    tricky = "100% sure? it's 'quoted' %s %(x)s ?"
    assert run(db, "t", lambda txn: txn.scalar("SELECT ?", (tricky,))) == tricky


def test_a_literal_percent_in_sql_with_parameters(db: Any) -> None:
    run(db, "t", insert_domain, "percent.test")
    rows = run(db, "t", lambda txn: txn.query("SELECT name, '100%' FROM domains WHERE name LIKE ?", ("%.test",)))
    assert ("percent.test", "100%") in [tuple(r) for r in rows]


def test_a_literal_percent_in_sql_without_parameters(db: Any) -> None:
    assert run(db, "t", lambda txn: txn.scalar("SELECT '50%'")) == "50%"


def test_sql_in_a_value_stays_a_value(db: Any) -> None:
    hostile = "x'); DROP TABLE domains; --"
    run(db, "t", insert_domain, hostile)
    assert run(db, "t", count_domains, hostile) == 1


def test_a_committed_transaction_runs_its_after_commit_callbacks(db: Any) -> None:
    calls: list[str] = []

    def work(txn: Txn) -> str:
        insert_domain(txn, "committed.test")
        txn.call_after(calls.append, "first")
        txn.call_after(calls.append, "second")
        assert calls == []  # not before commit
        return "result"

    assert run(db, "add", work) == "result"
    assert calls == ["first", "second"]
    assert run(db, "t", count_domains, "committed.test") == 1


def test_a_failing_transaction_rolls_back_and_skips_callbacks(db: Any) -> None:
    calls: list[str] = []

    def work(txn: Txn) -> None:
        insert_domain(txn, "rolledback.test")
        txn.call_after(calls.append, "never")
        raise Boom("no")

    with pytest.raises(Boom):
        run(db, "fail", work)
    assert calls == []
    assert run(db, "t", count_domains, "rolledback.test") == 0


def test_a_constraint_violation_rolls_back_the_whole_transaction(db: Any) -> None:
    run(db, "t", insert_domain, "dup.test")

    def work(txn: Txn) -> None:
        insert_domain(txn, "first-half.test")
        insert_domain(txn, "dup.test")

    with pytest.raises(Exception, match="(?i)unique"):
        run(db, "dup", work)
    assert run(db, "t", count_domains, "first-half.test") == 0
    # the connection is usable afterwards
    assert run(db, "t", count_domains, "dup.test") == 1


def retryable_error(engine: Any) -> BaseException:
    if engine.name == "sqlite":
        import sqlite3

        return sqlite3.OperationalError("database is locked")
    import psycopg2.errors

    return psycopg2.errors.SerializationFailure("could not serialize access")


def test_a_serialisation_failure_is_retried_and_callbacks_run_once(db: Any) -> None:
    attempts: list[int] = []
    calls: list[int] = []

    def work(txn: Txn) -> int:
        attempts.append(1)
        insert_domain(txn, "retried.test")
        txn.call_after(calls.append, len(attempts))
        if len(attempts) == 1:
            raise retryable_error(txn.engine)
        return len(attempts)

    assert run(db, "retry", work) == 2
    assert calls == [2]
    assert run(db, "t", count_domains, "retried.test") == 1


def test_a_failing_callback_does_not_undo_the_commit(pooled: Any) -> None:
    def work(txn: Txn) -> str:
        insert_domain(txn, "callback.test")
        txn.call_after(lambda: 1 / 0)
        return "ok"

    assert run(pooled, "cb", work) == "ok"
    assert run(pooled, "t", count_domains, "callback.test") == 1


def test_transactions_are_timed_by_name(pooled: Any) -> None:
    run(pooled, "named_ok", lambda txn: None)
    with pytest.raises(Boom):
        run(pooled, "named_fail", lambda txn: (_ for _ in ()).throw(Boom()))
    assert ("named_ok", True) in pooled.observed and ("named_fail", False) in pooled.observed
