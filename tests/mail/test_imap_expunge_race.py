"""A message one session expunges stays readable by sessions that still show it (issue 21, as in
Dovecot), until its purge a grace period later; after that they get ``NO [EXPUNGEISSUED]``
(RFC 5530), never ``NO [SERVERBUG]``. Quota and counters drop at expunge; the purge removes the
blobs, once, however many nodes run it. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import imaplib
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tau.mail.expunge_purge import ExpungePurger
from tau.mail.store.context import StoreContext
from tau.mail.store.purge import GRACE, pending_count, purge_due
from tau.storage.database import SyncDatabase
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.harness import resolve
from tests.support.imap import IMAPEnv, message, tagged
from tests.support.mail_api import mail_world

ALICE = "alice@example.test"
PASSWORD = "secret-Pa55"
LITERAL = re.compile(r"\{(\d+)\}$")


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    for i in range(1, 4):
        e.append(ALICE, message(i, body=f"Body of message {i}.\r\n" + "x" * 40 * i + "\r\n"))
    return e


def expunge_2(env: IMAPEnv) -> Any:
    """Session A deletes and expunges message 2 (UID 2); returns A."""
    a = env.client(ALICE, mailbox="INBOX")
    a.ok("a1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd("a2 EXPUNGE") == ["* 2 EXPUNGE", "a2 OK Expunge completed"]
    return a


def pass_grace(env: IMAPEnv, *active) -> None:
    """Let the grace period pass; the ``active`` sessions keep working meanwhile (FETCH, which
    never reports EXPUNGE), so the 30-minute autologout spares them."""
    for _ in range(GRACE // 600 + 1):
        env.registry.reactor.advance(600)
        for c in active:
            c.ok("k FETCH 1 UID")


def purge(env: IMAPEnv, *active) -> int:
    """Let the grace period pass and run the periodic purge once."""
    pass_grace(env, *active)
    return int(resolve(ExpungePurger(env.registry).run_once()))


def literal(c, line: str) -> bytes:
    """Send ``line``; the octets of the one literal in its answer (must end OK)."""
    out = c.send(line.encode() + b"\r\n")
    head, _, rest = out.partition(b"\r\n")
    n = int(LITERAL.search(head.decode()).group(1))
    assert rest[n:].endswith(b")\r\n" + line.split(" ")[0].encode() + b" OK FETCH completed\r\n"), out
    return rest[:n]


def blob_count(registry) -> int:
    return len(list(registry.blob_backend.list_older(4e9)))


def test_a_session_keeps_reading_what_another_expunged(env):
    b = env.client(ALICE, mailbox="INBOX")
    raw = message(2, body="Body of message 2.\r\n" + "x" * 80 + "\r\n")
    before = b.ok("f1 FETCH 2 (FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    expunge_2(env)
    # during FETCH the message keeps its number and all its data (flags as at expunge time)
    after = b.ok("f2 FETCH 2 (RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    assert after == [before[0].replace("FLAGS () ", "")]
    assert literal(b, "f3 FETCH 2 BODY.PEEK[]") == raw
    assert literal(b, "f4 FETCH 2 BODY.PEEK[]<5.20>") == raw[5:25]
    assert literal(b, "f5 FETCH 2 BINARY.PEEK[1]") == raw.split(b"\r\n\r\n", 1)[1]
    assert literal(b, "f6 FETCH 2 BODY[TEXT]") == raw.split(b"\r\n\r\n", 1)[1]
    # until a command that may renumber reports it
    assert b.ok("n NOOP") == ["* 2 EXPUNGE"]
    assert b.ok("u UID FETCH 2 UID") == []


def test_after_the_purge_fetch_says_expungeissued(env):
    b = env.client(ALICE, mailbox="INBOX")
    expunge_2(env)
    assert purge(env, b) == 1
    lines = b.cmd("f1 FETCH 2 BODY.PEEK[]")
    assert lines == ["f1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist"]
    lines = b.cmd("f2 FETCH 1:3 UID")
    assert lines[:-1] == ["* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)"]
    assert lines[-1].startswith("f2 NO [EXPUNGEISSUED]")
    assert b.ok("n NOOP") == ["* 2 EXPUNGE"]
    assert b.ok("f3 FETCH 1:* UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"]


def test_quota_and_counters_drop_at_expunge(env):
    sizes = [len(message(i, body=f"Body of message {i}.\r\n" + "x" * 40 * i + "\r\n")) for i in (1, 2, 3)]
    assert resolve(env.store.usage_detail(ALICE))["bytes"] == sum(sizes)
    c = env.client(ALICE)
    b = env.client(ALICE, mailbox="INBOX")
    expunge_2(env)
    assert resolve(env.store.usage_detail(ALICE))["bytes"] == sizes[0] + sizes[2]
    assert resolve(env.store.usage_detail(ALICE))["messages"] == 2
    assert c.ok('s STATUS "INBOX" (MESSAGES SIZE)') == ['* STATUS "INBOX" (MESSAGES 2 SIZE '
                                                       f'{sizes[0] + sizes[2]})']
    # still readable, yet no longer counted
    assert literal(b, "f FETCH 2 BODY.PEEK[]") == message(2, body="Body of message 2.\r\n" + "x" * 80 + "\r\n")


def test_copy_takes_what_is_readable_and_move_refuses(env):
    b = env.client(ALICE, mailbox="INBOX")
    expunge_2(env)
    b.ok("f FETCH 1 UID")  # B learns of the expunge, but may not report it yet
    # MOVE: the source is already gone (another session removed it); nothing moves
    lines = b.cmd("m1 MOVE 1:3 Trash")
    assert lines[0] == "* 2 EXPUNGE" and lines[1].startswith("m1 NO [EXPUNGEISSUED]")
    assert b.cmd("m2 UID MOVE 2 Trash") == ["m2 OK UID MOVE completed"]  # no longer in B's view
    assert resolve(env.store.get_mailbox(ALICE, "Trash")).messages == 0
    assert resolve(env.store.uids(resolve(env.store.get_mailbox(ALICE, "INBOX")).id)) == [1, 3]
    c = env.client(ALICE, mailbox="INBOX")
    d = env.client(ALICE, mailbox="INBOX")
    d.ok("a1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    d.ok("a2 EXPUNGE")
    c.ok("f FETCH 2 UID")
    # COPY: what the session shows is still readable, so it is copied
    line = tagged(c.cmd("c1 COPY 1:2 Archive"), "c1")
    assert line.startswith("c1 OK [COPYUID ") and line.endswith(" 1,3 1:2] COPY completed")
    archive = resolve(env.store.get_mailbox(ALICE, "Archive"))
    metas = resolve(env.store.fetch(archive.id, [1, 2]))
    assert [resolve(env.store.read(m.blob_key)) for m in metas] == [message(1, body="Body of message 1.\r\n"
                                                                            + "x" * 40 + "\r\n"),
                                                                    message(3, body="Body of message 3.\r\n"
                                                                            + "x" * 120 + "\r\n")]
    # once purged, COPY of it copies nothing
    e = env.client(ALICE, mailbox="INBOX")
    d.ok("a3 STORE 1 +FLAGS.SILENT (\\Deleted)")
    d.ok("a4 EXPUNGE")
    e.ok("f FETCH 1 UID")
    purge(env, e)
    assert tagged(e.cmd("c2 COPY 1 Archive"), "c2").startswith("c2 NO [EXPUNGEISSUED]")
    assert resolve(env.store.get_mailbox(ALICE, "Archive")).messages == 2


def test_other_readers_do_not_see_expunged_messages(tmp_path, db_url):
    world = next(mail_world(tmp_path, db_url))
    env = IMAPEnv(world.registry)
    resolve(env.store.ensure_defaults(ALICE))
    env.append(ALICE, message(1, subject="Keep"))
    env.append(ALICE, message(2, subject="Trashme"))
    inbox = resolve(env.store.get_mailbox(ALICE, "INBOX"))
    b = env.client(ALICE, mailbox="INBOX")
    item = f"{inbox.id}.2"
    assert world.api("DELETE", f"/api/emails/{item}").status in (200, 204)
    assert world.api("GET", f"/api/emails/{item}").status == 404
    assert [i["subject"] for i in world.items()] == ["Keep"]
    assert b.ok("s SEARCH SUBJECT Trashme") == ["* SEARCH"]
    assert literal(b, "f FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]") == b"Subject: Trashme\r\n\r\n"
    world.registry.db.close()


def test_purge_removes_the_blobs(env):
    registry = env.registry
    baseline = blob_count(registry)
    b = env.client(ALICE, mailbox="INBOX")
    env.append(ALICE, message(4, body="only here\r\n"))
    assert b.ok("n NOOP") == ["* 4 EXISTS"]
    b.ok("s STORE 4 +FLAGS.SILENT (\\Deleted)")
    b.ok("e EXPUNGE")
    assert blob_count(registry) == baseline + 1  # kept for stale views
    assert resolve(ExpungePurger(registry).run_once()) == 0  # within the grace period
    assert purge(env) == 1
    assert blob_count(registry) == baseline
    orphans = registry.db.sync.run("refs", lambda t: t.scalar("SELECT COUNT(*) FROM mail_blobs WHERE refs <= 0"))
    assert orphans == 0 and registry.db.sync.run("n", pending_count) == 0


def test_a_blob_gone_between_metadata_and_read_is_expungeissued(env):
    """The purge may win the race against a FETCH that already has the metadata."""
    b = env.client(ALICE, mailbox="INBOX")
    expunge_2(env)
    inbox = resolve(env.store.get_mailbox(ALICE, "INBOX")).id
    key = resolve(env.store.fetch_expunged(inbox, [2]))[0].blob_key
    env.registry.blobs.sync.delete(key)
    lines = b.cmd("f1 FETCH 2 (UID BODY.PEEK[])")
    assert lines == ["f1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist"]
    assert not b.closed


def test_deleting_the_mailbox_releases_expunged_messages(env):
    registry = env.registry
    resolve(env.store.create_mailbox(ALICE, "Old"))
    baseline = blob_count(registry)
    env.append(ALICE, message(7, body="in Old\r\n"), mailbox="Old")
    c = env.client(ALICE, mailbox="Old")
    c.ok("s STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("e EXPUNGE")
    c.ok("u UNSELECT")
    assert registry.db.sync.run("n", pending_count) == 1 and blob_count(registry) == baseline + 1
    c.ok('d DELETE "Old"')
    assert registry.db.sync.run("n", pending_count) == 0 and blob_count(registry) == baseline
    assert resolve(env.store.usage_detail(ALICE))["messages"] == 3


def test_erasing_the_user_releases_expunged_messages(env):
    from tau.ops.privacy import purge_user

    registry = env.registry
    expunge_2(env)
    assert registry.db.sync.run("n", pending_count) == 1
    assert purge_user(registry.config, registry.db.sync, ALICE)["mail_blobs"] == 3
    assert blob_count(registry) == 0 and registry.db.sync.run("n", pending_count) == 0
    assert registry.db.sync.run("refs", lambda t: t.scalar("SELECT COUNT(*) FROM mail_blobs")) == 0


def test_one_node_at_a_time_takes_the_purge(env):
    expunge_2(env)
    env.registry.reactor.advance(GRACE + 1)
    first, second = ExpungePurger(env.registry), ExpungePurger(env.registry)
    assert resolve(first.run_once()) == 1
    assert resolve(second.run_once()) == 0  # the lease is the first node's
    env.registry.reactor.advance(first.interval)
    assert resolve(second.run_once()) == 0  # lease expired, taken over, nothing left


def test_concurrent_purges_drop_each_reference_once(env):
    """Two nodes purging the same rows at once (two connections, two threads): every row goes
    once, no count goes below zero, and the blobs are all collected afterwards."""
    registry = env.registry
    baseline = blob_count(registry)
    inbox = resolve(env.store.get_mailbox(ALICE, "INBOX")).id
    for i in range(40):
        env.append(ALICE, message(100 + i, body=f"purge me {i}\r\n"))
    uids = resolve(env.store.uids(inbox))
    resolve(env.store.store_flags(inbox, uids, "+", ["\\Deleted"]))
    resolve(env.store.expunge(inbox))
    registry.reactor.advance(GRACE + 1)
    ctx = StoreContext(blobs=registry.blobs.sync, bus=registry.bus, default_quota=0, keyring=registry.keyring)
    counts: list[int] = []
    start = threading.Barrier(2)

    def node() -> None:
        db = SyncDatabase(registry.db.engine, registry.reactor)
        try:
            start.wait()
            counts.append(db.run("purge", purge_due, ctx, 1000))
        finally:
            db.close()

    threads = [threading.Thread(target=node) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(counts) == 2 and sum(counts) == len(uids)
    sql = "SELECT COUNT(*) FROM mail_blobs WHERE refs < 0"
    assert registry.db.sync.run("neg", lambda t: t.scalar(sql)) == 0
    resolve(env.store.sweep_blobs())
    assert blob_count(registry) == baseline - 3 and registry.db.sync.run("n", pending_count) == 0


# -- the race, on a real daemon -------------------------------------------------------------------

ROUNDS = 200


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp(f"expunge-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("imap", "http"))
    d.init()
    d.add_user(ALICE, PASSWORD)
    d.start("imap")
    yield d
    d.stop()


def session(d: TauDaemon) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    return imap


@pytest.mark.e2e
def test_expunge_racing_fetch_never_fails(daemon):
    """Session A expunges the message B is fetching, 200 times: every FETCH gives the exact bytes
    (or NO [EXPUNGEISSUED], were it purged), none fails."""
    a, b = session(daemon), session(daemon)
    outcomes: dict[str, int] = {"bytes": 0, "expungeissued": 0}
    expunges: list[tuple[str, str]] = []

    def expunger(go: threading.Barrier) -> None:
        go.wait()
        expunges.append((a.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")[0], a.expunge()[0]))

    try:
        for n in range(ROUNDS):
            raw = message(1000 + n, body=f"race {n}\r\n" + "y" * (n * 7 % 500) + "\r\n")
            a.append("INBOX", None, None, raw)
            seq = int(b.select("INBOX")[1][0])  # the new message is the last one B shows
            go = threading.Barrier(2)
            t = threading.Thread(target=expunger, args=(go,))
            t.start()
            go.wait()
            for _ in range(3):
                typ, data = b.fetch(str(seq), "(BODY.PEEK[])")
                if typ == "OK":
                    literals = [d[1] for d in data if isinstance(d, tuple)]  # unsolicited FLAGS may come too
                    assert literals == [raw], data
                    outcomes["bytes"] += 1
                else:
                    assert typ == "NO" and data[0].startswith(b"[EXPUNGEISSUED]"), (typ, data)
                    outcomes["expungeissued"] += 1
            t.join(30)
            b.noop()
    finally:
        for s in (a, b):
            s.logout()
    assert expunges == [("OK", "OK")] * ROUNDS
    # no purge can run within the grace period, so every FETCH got the bytes
    assert outcomes == {"bytes": 3 * ROUNDS, "expungeissued": 0}
    assert b"IMAP command failed" not in daemon.log.read_bytes()
