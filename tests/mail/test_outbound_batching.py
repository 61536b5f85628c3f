"""The delivery worker's database side on both engines: outcomes of many rows recorded in one
transaction (journal, blob references, claims), claimed-but-untried rows given back, the group
commit of ``recorder.Recorder`` (a failing job does not take its batch down), and the pacing that
lets SMTP acceptance go first (``pacing.Pacer``)."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.task import Clock

from tau.mail.outbound import pacing
from tau.mail.outbound.recorder import FLUSH_DELAY, Job, Recorder
from tau.mail.smtp.activity import Activity
from tau.mail.store import queue as rows
from tests.support.harness import add_user, resolve

ALICE = "alice@example.test"


def enqueue(registry: Any, store: Any, key: str, rcpts: list[str], message_id: str) -> int:
    return resolve(store.enqueue_outbound(ALICE, ALICE, rcpts, key, 21, message_id))


def setup(registry: Any, count: int) -> tuple[Any, str, list[int]]:
    from tau.mail.store import MailStore

    add_user(registry, ALICE, fast_hash=True)
    store = MailStore(registry)
    key = resolve(registry.blobs.put(b"Subject: x\r\n\r\nbody\r\n")).key
    ids = [enqueue(registry, store, key, [f"r{i}@remote.test"], f"<m{i}@example.test>") for i in range(count)]
    return store, key, ids


def refs(registry: Any, key: str) -> int:
    """References left on ``key`` (0 once it was collected)."""
    return int(registry.db.sync.run("refs", lambda t: t.scalar("SELECT refs FROM mail_blobs WHERE blob_key = ?",
                                                               (key,))) or 0)


def statuses(registry: Any) -> list[tuple[Any, ...]]:
    return registry.db.sync.run("q", lambda t: t.query("SELECT id, status, attempts FROM outbound_queue ORDER BY id"))


def test_record_many_one_batch(registry):
    store, key, ids = setup(registry, 3)
    db = registry.db.sync
    assert refs(registry, key) == 3
    now = int(time.time())
    claimed = db.run("claim", rows.claim, now, 10, 60)
    sent = rows.Result(claimed[0], {"r0@remote.test": ["sent", 250, "ok", "mx"]})
    retry = rows.Result(claimed[1], {"r1@remote.test": ["retry", 451, "later", "mx"]}, next_attempt_at=now + 600)
    failed = rows.Result(claimed[2], {"r2@remote.test": ["failed", 550, "no", "mx"]})
    assert db.run("record", rows.record_many, [sent, retry, failed], now) == []
    assert statuses(registry) == [(ids[0], "sent", 1), (ids[1], "queued", 1), (ids[2], "failed", 1)]
    assert refs(registry, key) == 1                          # the two final rows released theirs, once each
    assert db.run("again", rows.record_many, [sent, failed], now) == []   # not ours any more: no change
    assert refs(registry, key) == 1
    journal = db.run("j", lambda t: t.query("SELECT message_key, rcpt FROM outbound_sent"))
    assert journal == [("<m0@example.test>", "r0@remote.test")]


def test_already_sent_many_and_release(registry):
    store, key, ids = setup(registry, 2)
    db = registry.db.sync
    now = int(time.time())
    claimed = db.run("claim", rows.claim, now, 10, 60)
    db.run("record", rows.record_many, [rows.Result(claimed[0], {"r0@remote.test": ["sent", 250, "ok", ""]})], now)
    found = db.run("s", rows.already_sent_many, [("<m0@example.test>", ["R0@remote.test", "x@remote.test"]),
                                                 ("<m1@example.test>", ["r1@remote.test"]), ("<none>", [])])
    assert found == [{"r0@remote.test"}, set(), set()]
    assert db.run("release", rows.release, [ids[1], ids[0]]) == 1      # only the row still 'sending'
    assert [r[1] for r in statuses(registry)] == ["sent", "queued"]
    assert [r.id for r in db.run("claim", rows.claim, now, 10, 60)] == [ids[1]]


def test_recorder_commits_outcomes_and_claims_together(registry):
    store, key, ids = setup(registry, 3)
    now = int(time.time())
    claimed = registry.db.sync.run("claim", rows.claim, now, 2, 60)
    clock: Clock = registry.reactor
    flushed: list[int] = []
    recorder = Recorder(clock, registry.db, store, flushed=lambda: flushed.append(1))
    done = [recorder.record(Job(rows.Result(row, {row.rcpt_to[0]: ["sent", 250, "ok", ""]}), ALICE))
            for row in claimed]
    assert not any(d.called for d in done) and recorder.pending == 2 and recorder.transactions == 0
    more = recorder.claim(10, 60, True)
    clock.advance(0)                                  # a claim does not wait: it takes the outcomes along
    assert all(d.called for d in done) and recorder.transactions == 1 and flushed == [1]
    [(row, skip)] = resolve(more)
    assert row.id == ids[2] and skip == set()
    assert [r[1] for r in statuses(registry)] == ["sent", "sent", "sending"]
    recorder.record(Job(rows.Result(row, {row.rcpt_to[0]: ["sent", 250, "ok", ""]}), ALICE))
    clock.advance(FLUSH_DELAY / 2)
    assert recorder.transactions == 1                 # outcomes alone wait a little for company
    clock.advance(FLUSH_DELAY)
    assert recorder.transactions == 2 and recorder.pending == 0
    assert refs(registry, key) == 0


def test_recorder_a_failing_job_does_not_sink_its_batch(registry):
    store, key, ids = setup(registry, 2)
    claimed = registry.db.sync.run("claim", rows.claim, int(time.time()), 2, 60)
    clock: Clock = registry.reactor
    recorder = Recorder(clock, registry.db, store)
    good = recorder.record(Job(rows.Result(claimed[0], {"r0@remote.test": ["sent", 250, "ok", ""]}), ALICE))
    bad = recorder.record(Job(rows.Result(claimed[1], {"r1@remote.test": ["retry", 451, object(), ""]},
                                          next_attempt_at=1), ALICE))        # cannot be stored (not JSON)
    failures: list[Any] = []
    bad.addErrback(failures.append)
    clock.advance(FLUSH_DELAY)
    assert resolve(good) is None and len(failures) == 1
    assert [r[1] for r in statuses(registry)] == ["sent", "sending"]   # the bad row waits for its lease
    state = registry.db.sync.run("s", rows.get, ids[0]).rcpt_state
    assert state["r0@remote.test"][0] == "sent"
    assert resolve(recorder.drain()) is None


def test_pacing_yields_to_smtp_acceptance():
    clock = Clock()
    clock.advance(1000)
    inbound = Activity(clock)
    pacer = pacing.Pacer(clock, inbound)
    assert all(pacer.take() == 0 for _ in range(1000))           # nobody is sending us mail: flat out
    inbound.mark()
    assert [pacer.take() for _ in range(int(pacing.BURST))] == [0] * int(pacing.BURST)
    wait = pacer.take()
    assert 0 < wait <= 1 / pacing.BUSY_RATE
    clock.advance(wait)
    assert pacer.take() == 0
    started = 0
    for _ in range(100):                                         # one busy second, polled every 10 ms
        clock.advance(0.01)
        inbound.mark()
        while pacer.take() == 0:
            started += 1
    assert pacing.BUSY_RATE - 2 <= started <= pacing.BUSY_RATE + 2
    clock.advance(pacing.BUSY_WINDOW)                            # SMTP quiet again: no limit
    assert all(pacer.take() == 0 for _ in range(1000))
