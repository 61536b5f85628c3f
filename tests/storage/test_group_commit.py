"""Group commit (issue 15 item 1): writes that arrive while one commits share the next
transaction, each in its own savepoint; a lone write runs at once; on both engines."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.python.failure import Failure

from tau.storage.database import Database, Txn
from tau.storage.group import GroupCommit
from tests.support.harness import ThreadedMemoryReactorClock


class HeldThreadPool:
    """adbapi's thread pool, holding each interaction until the test runs it: what the
    database is busy with while more writers arrive."""

    def __init__(self) -> None:
        self.held: list[tuple[Any, Any, tuple[Any, ...], dict[str, Any]]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def callInThreadWithCallback(self, on_result: Any, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.held.append((on_result, fn, args, kwargs))

    def run_next(self) -> None:
        on_result, fn, args, kwargs = self.held.pop(0)
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class Refused(Exception):
    pass


@pytest.fixture
def held(registry: Any) -> Any:
    db = Database(registry.engine, ThreadedMemoryReactorClock(), clock=registry.clock)
    pool = HeldThreadPool()
    db.pool.threadpool = pool
    db.start()
    db.pool_held = pool
    db.grouped = GroupCommit(db, concurrency=1)  # one commit at a time, as on SQLite
    yield db
    db.close()


def add(txn: Txn, name: str, calls: list[str]) -> str:
    txn.execute("INSERT INTO domains (name, created_at) VALUES (?, ?)", (name, 0))
    txn.call_after(calls.append, name)
    return name


def add_then_refuse(txn: Txn, name: str, calls: list[str]) -> None:
    add(txn, name, calls)
    raise Refused(name)


def domains(registry: Any) -> list[str]:
    rows = registry.db.sync.run("t", lambda txn: txn.query("SELECT name FROM domains WHERE name LIKE 'g%'"))
    return sorted(r[0] for r in rows)


def outcome(d: Any) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_a_lone_write_runs_at_once_in_its_own_transaction(held: Any, registry: Any) -> None:
    calls: list[str] = []
    got = outcome(held.run_grouped("t", add, "g-alone.test", calls))
    assert len(held.pool_held.held) == 1  # handed to the pool at once: no waiting for company
    held.pool_held.run_next()
    assert got == ["g-alone.test"] and calls == ["g-alone.test"]
    assert held.grouped.batches == 0
    assert domains(registry) == ["g-alone.test"]


def test_writes_arriving_meanwhile_share_one_transaction(held: Any, registry: Any) -> None:
    calls: list[str] = []
    first = outcome(held.run_grouped("t", add, "g0.test", calls))
    rest = [outcome(held.run_grouped("t", add, f"g{i}.test", calls)) for i in range(1, 9)]
    assert len(held.pool_held.held) == 1 and not any(rest)  # they wait for the running commit
    held.pool_held.run_next()
    assert first == ["g0.test"] and len(held.pool_held.held) == 1  # the eight go as one transaction
    held.pool_held.run_next()
    assert [r[0] for r in rest] == [f"g{i}.test" for i in range(1, 9)]
    assert held.grouped.batches == 1 and held.grouped.largest == 8
    assert sorted(calls) == sorted(f"g{i}.test" for i in range(9))
    assert domains(registry) == sorted(f"g{i}.test" for i in range(9))


def test_a_refused_write_is_rolled_back_alone(held: Any, registry: Any) -> None:
    calls: list[str] = []
    outcome(held.run_grouped("t", add, "g0.test", calls))
    ok1 = outcome(held.run_grouped("t", add, "g1.test", calls))
    bad = outcome(held.run_grouped("t", add_then_refuse, "g2.test", calls))
    ok3 = outcome(held.run_grouped("t", add, "g3.test", calls))
    held.pool_held.run_next()
    held.pool_held.run_next()
    assert ok1 == ["g1.test"] and ok3 == ["g3.test"]
    assert isinstance(bad[0], Failure) and bad[0].check(Refused)
    assert "g2.test" not in calls  # its after-commit callback went with its savepoint
    assert domains(registry) == ["g0.test", "g1.test", "g3.test"]


def test_a_failing_batch_falls_back_to_one_transaction_each(held: Any, registry: Any) -> None:
    """A duplicate key inside one batch is refused to its writer only, even when the engine
    cannot continue the batch's transaction."""
    calls: list[str] = []
    outcome(held.run_grouped("t", add, "g0.test", calls))
    first = outcome(held.run_grouped("t", add, "g1.test", calls))
    dup = outcome(held.run_grouped("t", add, "g1.test", calls))
    held.pool_held.run_next()
    while held.pool_held.held:
        held.pool_held.run_next()
    assert first == ["g1.test"]
    assert isinstance(dup[0], Failure)
    assert domains(registry) == ["g0.test", "g1.test"]


def test_every_write_of_a_batch_seals_with_the_database_keyring(held: Any, registry: Any) -> None:
    held.keyring = registry.keyring
    seen: list[Any] = []

    def look(txn: Txn) -> None:
        seen.append(txn.keyring)

    outcome(held.run_grouped("t", look))
    later = [outcome(held.run_grouped("t", look)) for _ in range(3)]
    held.pool_held.run_next()
    held.pool_held.run_next()
    assert all(r == [None] for r in later) and held.grouped.batches == 1
    assert seen == [registry.keyring] * 4


def test_a_refused_write_takes_its_memo_with_it(held: Any, registry: Any) -> None:
    """What a write looked up or made inside its savepoint (a key made on first use, a lock) is
    rolled back with it: the next write of the batch must not find it in the transaction's memo."""
    seen: list[Any] = []

    def remember_then_refuse(txn: Txn) -> None:
        txn.memo["made"] = True
        raise Refused("x")

    def look(txn: Txn) -> None:
        seen.append(txn.memo.get("made"))

    outcome(held.run_grouped("t", look))
    bad = outcome(held.run_grouped("t", remember_then_refuse))
    outcome(held.run_grouped("t", look))
    held.pool_held.run_next()
    held.pool_held.run_next()
    assert bad[0].check(Refused) and seen == [None, None] and held.grouped.batches == 1


def test_an_ordered_lane_runs_one_batch_at_a_time_and_calls_back_in_order(held: Any, registry: Any) -> None:
    held.grouped = GroupCommit(held, concurrency=4)  # as on PostgreSQL: the lane does not use it
    calls: list[str] = []
    got = [outcome(held.run_in_order("lane", "t", add, f"g{i}.test", calls)) for i in range(6)]
    while held.pool_held.held:
        assert len(held.pool_held.held) == 1  # the next batch waits for the last one's callbacks
        held.pool_held.run_next()
    assert [g[0] for g in got] == calls == [f"g{i}.test" for i in range(6)]


def add_together(txn: Txn, names: list[str]) -> None:
    """The writer of ``queue_add``: one statement for every name queued in the transaction."""
    txn.execute("INSERT INTO domains (name, created_at) VALUES " + ", ".join(["(?, 0)"] * len(names)), names)
    txn.call_after(writes.append, list(names))


writes: list[list[str]] = []


def queue_add(txn: Txn, name: str, refuse: bool) -> str:
    if refuse:  # refused by its checks: it sent nothing, so nothing is rolled back
        raise Refused(name)
    txn.write_at_end("domains", add_together, name)
    return name


def test_writes_queued_for_the_end_of_a_batch_go_in_one_statement_without_the_refused(
        held: Any, registry: Any) -> None:
    writes.clear()
    calls: list[str] = []
    outcome(held.run_grouped("t", add, "g0.test", calls))
    got = [outcome(held.run_grouped("t", queue_add, f"g{i}.test", i == 2)) for i in range(1, 5)]
    bad = outcome(held.run_grouped("t", add_then_refuse, "g5.test", calls))  # sent, then refused
    held.pool_held.run_next()
    held.pool_held.run_next()
    assert [g[0] for g in got if not isinstance(g[0], Failure)] == ["g1.test", "g3.test", "g4.test"]
    assert got[1][0].check(Refused) and bad[0].check(Refused)
    assert writes == [["g1.test", "g3.test", "g4.test"]]  # one writer call for the batch, in order
    assert domains(registry) == ["g0.test", "g1.test", "g3.test", "g4.test"]


def test_a_statement_sent_ahead_travels_with_the_next_one(held: Any, registry: Any) -> None:
    def two(txn: Txn) -> Any:
        txn.send_ahead("INSERT INTO domains (name, created_at) VALUES ('g-ahead.test', 0)")
        return txn.scalar("SELECT count(*) FROM domains WHERE name = 'g-ahead.test'")

    got = outcome(held.run_grouped("t", two))
    held.pool_held.run_next()
    assert got == [1]  # it ran before the statement it was sent with
    assert domains(registry) == ["g-ahead.test"]
