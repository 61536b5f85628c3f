"""Group commit: messages that arrive while a transaction runs share the next one; a refused
message in a batch does not take its neighbours down with it."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred

from tau.mail.mime import parse_message
from tau.mail.smtp.batch import GroupCommit, Job
from tau.mail.store import QuotaExceeded
from tau.mail.store.fields import prepare
from tests.support.harness import add_user
from tests.support.smtp import Client, mail_store, mailbox_messages, make_factory, message


class GatedDatabase:
    """Runs each transaction only when the test says so, to hold one batch "in flight"."""

    def __init__(self, db) -> None:
        self.db = db
        self.engine = db.engine
        self.gates: list[tuple[Deferred, str, tuple]] = []

    def run(self, name, fn, *args, readonly=False, **kwargs):
        d: Deferred = Deferred()
        self.gates.append((d, name, (fn, args, readonly, kwargs)))
        return d

    def release(self) -> str:
        d, name, (fn, args, readonly, kwargs) = self.gates.pop(0)
        self.db.run(name, fn, *args, readonly=readonly, **kwargs).chainDeferred(d)
        return name


@pytest.fixture
def store(registry):
    for user in ("alice@example.test", "bob@example.test", "carol@example.test"):
        add_user(registry, user)
    return mail_store(registry)


def job(registry, user: str, subject: str) -> Job:
    raw = message(subject=subject, to=user)
    info = registry.blobs.sync.put(raw)
    return Job(local=[user], remote=[], sender=None, mail_from="x@remote.test", key=info.key, size=info.size,
               fields=prepare(parse_message(raw), None), message_id=None, sent_copy=False)


def test_jobs_waiting_for_a_running_transaction_share_one(registry, store):
    gated = GatedDatabase(registry.db)
    commits = GroupCommit(gated, store.ctx)
    results: list = []
    first = commits.submit(job(registry, "alice@example.test", "one"))
    first.addBoth(results.append)
    for i, user in enumerate(["alice@example.test", "bob@example.test", "alice@example.test"]):
        commits.submit(job(registry, user, f"queued{i}")).addBoth(results.append)
    assert len(gated.gates) == 1                    # the lone first message went at once
    assert gated.release() == "smtp_deliver"
    assert len(gated.gates) == 1 and gated.gates[0][1] == "smtp_deliver_batch"
    gated.release()
    assert results == [None] * 4 and (commits.batches, commits.largest) == (2, 3)
    assert len(mailbox_messages(store, "alice@example.test")) == 3
    assert len(mailbox_messages(store, "bob@example.test")) == 1


def test_a_refused_job_does_not_fail_its_batch(registry, store):
    registry.db.sync.run("q", lambda txn: txn.execute(
        "UPDATE users SET quota_bytes = 10 WHERE address = 'bob@example.test'"))
    gated = GatedDatabase(registry.db)
    commits = GroupCommit(gated, store.ctx)
    results: dict[str, object] = {}
    for user in ("alice@example.test", "alice@example.test", "bob@example.test", "carol@example.test"):
        d = commits.submit(job(registry, user, f"to-{user}-{len(results)}"))
        key = f"{user}-{len(results)}"
        results[key] = "pending"
        d.addCallbacks(lambda _, k=key: results.__setitem__(k, "ok"),
                       lambda f, k=key: results.__setitem__(k, f.value))
    gated.release()                                   # the first, alone
    assert gated.release() == "smtp_deliver_batch"    # fails: bob is over quota
    while gated.gates:                                 # then one by one
        assert gated.release() == "smtp_deliver"
    assert [v if v == "ok" else type(v) for v in results.values()] == ["ok", "ok", QuotaExceeded, "ok"]
    assert len(mailbox_messages(store, "alice@example.test")) == 2
    assert len(mailbox_messages(store, "carol@example.test")) == 1
    assert mailbox_messages(store, "bob@example.test") == []


def test_sessions_use_the_shared_group_commit(registry, store):
    """Two connections whose messages end while a transaction is open: one batch for both."""
    gated = GatedDatabase(registry.db)
    commits = GroupCommit(gated, store.ctx)
    factory = make_factory(registry, store, "smtp")
    factory.delivery._commits = commits
    clients = [Client(factory) for _ in range(3)]
    replies = []
    for i, c in enumerate(clients):
        c.ehlo()
        replies.append(c.mail("x@remote.test", ["alice@example.test"], message(subject=f"s{i}")))
    assert all(r[-1].code == 354 for r in replies)      # no 250 yet: nothing is committed
    gated.release()
    gated.release()
    finals = [c.read()[-1] for c in clients]
    assert [r.code for r in finals] == [250, 250, 250]
    assert (commits.batches, commits.largest) == (2, 2)
    assert len(mailbox_messages(store, "alice@example.test")) == 3
