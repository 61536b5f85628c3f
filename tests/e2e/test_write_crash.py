"""Acknowledged means stored, under load (issue 15): eight writers at once — SMTP deliveries,
IMAP APPENDs and WebDAV PUTs, small (packed, group-committed) and large (a file each) — and
``kill -9`` of twistd in the middle. After a restart every message that got its 250 or OK and
every file that got its 201 is there, byte for byte; on SQLite and PostgreSQL.

``TAU_CRASH_ROUNDS`` (default 1) repeats the write-and-kill on the same data.
"""

from __future__ import annotations

import base64
import http.client
import imaplib
import os
import random
import smtplib
import threading
import time
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import engines
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
ROUNDS = int(os.environ.get("TAU_CRASH_ROUNDS", "1"))
KILL_AFTER = 60  # acknowledgements (each kind at least a few) before the kill


class Acks:
    """What the server acknowledged, per kind; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mail: dict[str, bytes] = {}  # Message-ID -> body marker
        self.files: dict[str, bytes] = {}  # path -> content
        self.stop = threading.Event()

    def count(self) -> tuple[int, int]:
        with self.lock:
            return len(self.mail), len(self.files)


def _message(tag: str, rnd: random.Random) -> tuple[str, bytes]:
    size = 80_000 if rnd.random() < 0.15 else 10_000  # some above the pack threshold
    body = "".join(rnd.choice("abcdefghij ") for _ in range(size // 2)).encode()
    mid = f"<{tag}@crash.test>"
    return mid, (f"From: w@remote.test\r\nTo: {ALICE}\r\nSubject: {tag}\r\nMessage-ID: {mid}\r\n\r\n").encode() \
        + body + b"\r\n"


def smtp_writer(port: int, name: str, acks: Acks) -> None:
    rnd = random.Random(name)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            for i in range(10_000):
                if acks.stop.is_set():
                    return
                mid, raw = _message(f"{name}-{i}", rnd)
                s.sendmail("w@remote.test", [ALICE], raw)  # returns on the 250
                with acks.lock:
                    acks.mail[mid] = raw[-40:]
    except (OSError, smtplib.SMTPException):
        return  # the kill


def append_writer(port: int, name: str, acks: Acks) -> None:
    rnd = random.Random(name)
    try:
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        imap.login(ALICE, PASSWORD)
        for i in range(10_000):
            if acks.stop.is_set():
                return
            mid, raw = _message(f"{name}-{i}", rnd)
            typ, _ = imap.append("INBOX", None, None, raw)
            if typ == "OK":
                with acks.lock:
                    acks.mail[mid] = raw[-40:]
    except (OSError, imaplib.IMAP4.error, imaplib.IMAP4.abort):
        return


def put_writer(port: int, name: str, acks: Acks) -> None:
    rnd = random.Random(name)
    auth = "Basic " + base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(10_000):
            if acks.stop.is_set():
                return
            path = f"/dav/files/{ALICE}/{name}-{i}.bin"
            data = rnd.randbytes(100_000 if rnd.random() < 0.15 else 4096)
            conn.request("PUT", path, body=data, headers={"Authorization": auth})
            resp = conn.getresponse()
            resp.read()
            if resp.status in (201, 204):
                with acks.lock:
                    acks.files[path] = data
    except (OSError, http.client.HTTPException):
        return


def write_and_kill(daemon: TauDaemon, round_no: int, acks: Acks) -> None:
    acks.stop.clear()
    writers = [threading.Thread(target=smtp_writer, args=(daemon.ports["smtp"], f"r{round_no}s{k}", acks))
               for k in range(3)]
    writers += [threading.Thread(target=append_writer, args=(daemon.ports["imap"], f"r{round_no}a{k}", acks))
                for k in range(3)]
    writers += [threading.Thread(target=put_writer, args=(daemon.ports["http"], f"r{round_no}p{k}", acks))
                for k in range(2)]
    before = sum(acks.count())
    for w in writers:
        w.start()
    deadline = time.monotonic() + 120
    while sum(acks.count()) - before < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.proc.kill()  # kill -9, writers mid-transaction
    daemon.proc.wait()
    acks.stop.set()
    for w in writers:
        w.join(60)
    assert sum(acks.count()) - before >= KILL_AFTER


def check_nothing_lost(daemon: TauDaemon, acks: Acks) -> None:
    store = DaemonStore(daemon)
    try:
        stored = {}
        for raw in store.messages(ALICE):  # each read back and decrypted (authenticated)
            for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    stored[line.split(b":", 1)[1].strip().decode()] = raw[-40:]
    finally:
        store.close()
    lost = [mid for mid, tail in acks.mail.items() if stored.get(mid) != tail]
    assert lost == [], f"{len(lost)} of {len(acks.mail)} acknowledged messages lost"
    auth = "Basic " + base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", daemon.ports["http"], timeout=30)
    missing = []
    for path, data in acks.files.items():
        conn.request("GET", path, headers={"Authorization": auth})
        resp = conn.getresponse()
        if resp.status != 200 or resp.read() != data:
            missing.append(path)
    conn.close()
    assert missing == [], f"{len(missing)} of {len(acks.files)} acknowledged files lost"


def sweep_leaves_no_orphans(daemon: TauDaemon) -> None:
    """What the kills left without rows (blobs written, rows never committed) goes in one sweep
    past the grace period, and every blob left is referenced."""
    from tau.blobs import orphans
    from tau.blobs.sweeper import LEASE, BlobSweeper
    from tests.support.harness import resolve

    store = DaemonStore(daemon)
    try:
        registry = store.registry
        # the killed daemon's sweeper holds the lease until it runs out: as if it had
        registry.db.sync.run("t", lambda txn: txn.execute("DELETE FROM job_leases WHERE name = ?", (LEASE,)))
        resolve(BlobSweeper(registry, 0, 3600).run_once())
        left = sorted(registry.blob_backend.list_older(float("inf")))
        used = registry.db.sync.run("t", orphans.referenced, left)
        assert [k for k in left if k not in used] == []
    finally:
        store.close()


@pytest.mark.parametrize("engine", engines())
def test_kill_9_under_eight_writers_loses_nothing_acknowledged(engine: str, request: pytest.FixtureRequest,
                                                                tmp_path: Path) -> None:
    url = None
    if engine == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        url = pg.url
    daemon = TauDaemon(tmp_path, database_url=url, listeners=("smtp", "imap", "http"))
    daemon.init()
    daemon.add_user(ALICE, PASSWORD)
    acks = Acks()
    try:
        for round_no in range(ROUNDS):
            daemon.start("http")
            write_and_kill(daemon, round_no, acks)
            daemon.start("http")
            check_nothing_lost(daemon, acks)
            daemon.stop()
        sweep_leaves_no_orphans(daemon)
        daemon.start("http")
        check_nothing_lost(daemon, acks)  # the sweep took only blobs nothing referenced
        mail, files = acks.count()
        print(f"{engine}: {ROUNDS} kills, {mail} messages and {files} files acknowledged, none lost")
        assert mail > 0 and files > 0
    finally:
        daemon.stop()
