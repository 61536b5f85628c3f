"""The database circuit breaker (issue 13 item 10, re-review): which failures open it, that it
refuses at once while open, probes once per interval, and closes only when a probe got through.
The protocol answers during a real outage are in tests/e2e/test_outage_daemon.py."""

from __future__ import annotations

import sqlite3

import pytest
from twisted.python.failure import Failure

from tau.storage.breaker import NORMAL, PROBE, Breaker, CircuitOpen, is_outage
from tau.storage.budget import QueryCancelled, StatementTimeout


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def locked() -> Failure:
    return Failure(sqlite3.OperationalError("database is locked"))


def test_what_counts_as_an_outage() -> None:
    import psycopg2
    import psycopg2.errors

    assert is_outage(sqlite3.OperationalError("database is locked"))
    assert is_outage(sqlite3.OperationalError("disk I/O error"))
    assert is_outage(psycopg2.OperationalError("could not connect to server: Connection refused"))
    assert is_outage(psycopg2.InterfaceError("connection already closed"))
    # a statement that was stopped, a bad query, a deadlock: the database is fine
    for exc in (sqlite3.OperationalError("no such table: x"), sqlite3.IntegrityError("UNIQUE"), ValueError("x")):
        assert not is_outage(exc)
    try:
        raise StatementTimeout("q", 1.0) from sqlite3.OperationalError("interrupted")
    except StatementTimeout as exc:
        assert not is_outage(exc)
    assert not is_outage(QueryCancelled("gone"))


def test_open_refuses_probes_once_per_interval_and_closes_on_a_good_probe() -> None:
    clock = Clock()
    b = Breaker(clock, interval=1.0)
    b.check()  # closed: nothing refused
    b.settle(NORMAL, "ok")
    b.failed(sqlite3.OperationalError("database is locked"))
    assert b.is_open
    with pytest.raises(CircuitOpen):
        b.check()
    assert not b.claim_probe()  # not before the interval
    clock.now += 1.0
    assert b.claim_probe() and not b.claim_probe()  # one probe at a time
    b.settle(PROBE, locked())  # still down: the next probe a second later
    assert b.is_open and not b.claim_probe()
    clock.now += 0.5
    b.settle(NORMAL, Failure(CircuitOpen("x")))  # fast refusals do not postpone the probe
    clock.now += 0.5
    assert b.claim_probe()
    b.settle(PROBE, None)
    assert not b.is_open
    b.check()


def test_statement_timeouts_and_client_errors_never_open_it() -> None:
    b = Breaker(Clock())
    b.failed(StatementTimeout("search", 30.0))
    b.failed(QueryCancelled("client went away"))
    b.failed(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not b.is_open


def test_a_users_queue_drains_when_each_waiter_is_refused_at_once() -> None:
    """While the breaker is open a queued transaction ends as soon as it is admitted; its release
    runs inside the previous release (this was a KeyError, answered as a 500)."""
    from tau.storage.budget import UserShares

    shares = UserShares(1)
    shares.acquire("alice@example.test")
    waiting = [shares.acquire("alice@example.test") for _ in range(3)]
    for d in waiting:
        d.addCallback(lambda _: shares.release("alice@example.test"))
    shares.release("alice@example.test")
    assert all(d.called for d in waiting) and shares.in_use("alice@example.test") == 0
    assert shares.acquire("alice@example.test").called  # the user is not locked out afterwards
