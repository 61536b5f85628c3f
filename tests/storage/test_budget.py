"""The daemon's pool bounds work (issue 13 item 6): a statement over its time budget is stopped
(PostgreSQL statement_timeout, SQLite progress handler) and raises StatementTimeout; cancelling a
transaction's Deferred interrupts its statement; one user has at most a share of the pool. Real
worker threads, on both engines; the test thread plays the reactor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer

from tau.storage import budget
from tau.storage.budget import QueryCancelled, StatementTimeout
from tests.support.pool import PumpedReactor, pooled_database

SLOW_SQLITE = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000)"
               " SELECT COUNT(*) FROM n")


def slow(txn: Any) -> Any:
    """Ten seconds or more of work on either engine."""
    if txn.engine.name == "postgres":
        return txn.scalar("SELECT pg_sleep(10)")
    return txn.scalar(SLOW_SQLITE)


def quick(txn: Any) -> int:
    return int(txn.scalar("SELECT 1"))


class Outcome:
    def __init__(self, d: defer.Deferred[Any]) -> None:
        self.started = time.monotonic()
        self.done: float | None = None
        self.result: Any = None
        d.addBoth(self._fired)

    def _fired(self, result: Any) -> None:
        self.done, self.result = time.monotonic(), result

    @property
    def took(self) -> float:
        assert self.done is not None
        return self.done - self.started


@pytest.fixture
def pool(registry: Any) -> Iterator[Any]:
    made: list[Any] = []

    def make(**kwargs: Any) -> tuple[Any, PumpedReactor]:
        db, reactor = pooled_database(registry, **kwargs)
        made.append((db, reactor))
        return db, reactor

    yield make
    for db, reactor in made:
        reactor.settle(0.1)
        db.close()


def test_a_slow_statement_is_stopped_and_the_pool_serves_the_next(pool: Any) -> None:
    db, reactor = pool(statement_timeout=0.3)
    first = Outcome(db.run("slow_one", slow))
    assert reactor.pump(lambda: first.done is not None, 8)
    assert first.result.check(StatementTimeout) and first.took < 3, first.took
    second = Outcome(db.run("quick_one", quick))
    assert reactor.pump(lambda: second.done is not None, 3) and second.result == 1 and second.took < 1


def test_background_work_gets_its_own_budget(pool: Any) -> None:
    db, reactor = pool(statement_timeout=0.2)
    db.background_timeout = 30
    with budget.background():
        d = db.run("sleepy", lambda txn: txn.scalar("SELECT pg_sleep(0.6)") if txn.engine.name == "postgres"
                   else txn.scalar(SLOW_SQLITE.replace("1000000000", "300000")))
    out = Outcome(d)
    assert reactor.pump(lambda: out.done is not None, 8) and not hasattr(out.result, "check"), out.result


def test_cancelling_a_transaction_interrupts_its_statement(pool: Any) -> None:
    db, reactor = pool(statement_timeout=60)
    d = db.run("slow_one", slow)
    seen = Outcome(d)
    finished: list[tuple[str, bool]] = []
    db._observe = lambda name, seconds, ok: finished.append((name, ok))
    reactor.pump(lambda: False, 0.3)        # running in its worker thread now
    d.cancel()
    assert seen.result is not None and seen.result.check(defer.CancelledError)
    assert reactor.pump(lambda: bool(finished), 3), "the statement kept running"
    assert finished == [("slow_one", False)]
    after = Outcome(db.run("quick_one", quick))
    assert reactor.pump(lambda: after.done is not None, 3) and after.result == 1


def test_a_cancelled_transaction_still_queued_never_runs(pool: Any) -> None:
    db, reactor = pool(statement_timeout=0.5, user_share=1)
    ran: list[str] = []

    async def as_alice(fn: Any) -> Any:
        budget.act_as("alice@example.test")
        return await db.run("work", fn)

    blocker = Outcome(defer.ensureDeferred(as_alice(slow)))
    queued = defer.ensureDeferred(as_alice(lambda txn: ran.append(txn.scalar("SELECT 'ran'"))))
    queued.addErrback(lambda f: f.trap(defer.CancelledError))
    queued.cancel()                          # waiting behind alice's first: it leaves her queue
    assert reactor.pump(lambda: blocker.done is not None, 8)
    reactor.settle(0.3)
    assert ran == [] and db.shares.in_use("alice@example.test") == 0


def test_one_user_holds_at_most_a_share_of_the_pool(pool: Any) -> None:
    db, reactor = pool(statement_timeout=0.5, user_share=1)

    async def as_user(user: str, fn: Any) -> Any:
        budget.act_as(user)
        return await db.run("work", fn)

    alice = [Outcome(defer.ensureDeferred(as_user("alice@example.test", slow))) for _ in range(4)]
    assert db.shares.in_use("alice@example.test") == 1
    bob = Outcome(defer.ensureDeferred(as_user("bob@example.test", quick)))
    assert reactor.pump(lambda: bob.done is not None, 5) and bob.result == 1
    assert bob.took < 1.5, bob.took   # behind at most one of alice's (0.5 s budget), not four
    assert reactor.pump(lambda: all(a.done is not None for a in alice), 10)
    assert all(a.result.check(StatementTimeout) for a in alice)
    assert db.shares.in_use("alice@example.test") == 0 and not db.shares._gates


def test_a_cancelled_budget_refuses_further_statements() -> None:
    b = budget.Budget(1)
    b.cancel()
    with pytest.raises(QueryCancelled):
        b.arm()
