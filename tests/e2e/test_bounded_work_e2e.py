"""Issue 13 item 6 against the real daemon (``twistd -n tau``, loopback sockets, each engine):
SEARCH with 2,000 ``NOT TEXT`` terms is refused at once, a slow SEARCH is stopped by ``[database]
statement_timeout_ms`` with ``NO [LIMIT]``, ten sessions hammering it while one closes its socket
mid-search do not keep another user's REST call waiting, and the daemon logs no traceback."""

from __future__ import annotations

import imaplib
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
# two-character needles: no word of the token index can answer them, so every message is decrypted
# and checked, 50 times over (the search that takes longest since mail is sealed at rest)
HEAVY = "SEARCH " + " ".join(f"NOT TEXT z{i}" for i in range(50))
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"bounded-{request.param}"), database_url=url,
                  listeners=("imap", "http"),
                  env={"TAU_DATABASE_STATEMENT_TIMEOUT_MS": "300", "TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0"}).init()
    d.add_user(ALICE)
    d.add_user(BOB)
    d.start("imap")
    yield d
    d.stop()


def imap(d: TauDaemon, user: str = ALICE) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
    c.login(user, PASSWORD)
    return c


def fill(d: TauDaemon) -> None:
    """1,024 messages of 64 KiB in alice's INBOX, 128 different ones (a SEARCH the index cannot
    answer decrypts and scans each content), one for bob."""
    rng = random.Random(1)
    c = imap(d)
    for n in range(128):
        body = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(800))
        c.append("INBOX", None, None,
                 (f"From: bob@example.test\r\nTo: {ALICE}\r\nSubject: big {n}\r\n\r\n{body}\r\n").encode())
    c.select("INBOX")
    for _ in range(3):
        assert c.copy("1:*", "INBOX")[0] == "OK"
    c.logout()
    b = imap(d, BOB)
    b.append("INBOX", None, None, b"From: alice@example.test\r\nSubject: for bob\r\n\r\nhi\r\n")
    b.logout()


def raw_command(d: TauDaemon, command: str, close_after: float | None = None) -> bytes:
    """Log in and select on a raw socket, send ``command``; its answer, or b"" when closed early."""
    s = socket.create_connection(("127.0.0.1", d.ports["imap"]), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(f'a LOGIN "{ALICE}" "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
    while not f.readline().startswith(b"b "):
        pass
    s.sendall(f"c {command}\r\n".encode())
    if close_after is not None:
        time.sleep(close_after)
        s.close()
        return b""
    while True:
        line = f.readline()
        if not line or line.startswith(b"c "):
            s.close()
            return line


def test_keys_timeouts_and_fair_share_on_the_real_daemon(daemon: TauDaemon) -> None:
    fill(daemon)
    started = time.monotonic()
    answer = raw_command(daemon, "SEARCH " + " ".join(f"NOT TEXT t{i}" for i in range(2000)))
    assert answer.startswith(b"c NO [LIMIT]") and time.monotonic() - started < 3, answer
    started = time.monotonic()
    answer = raw_command(daemon, HEAVY)
    assert answer.startswith(b"c NO [LIMIT]") and time.monotonic() - started < 5, answer

    answers: list[bytes] = []
    hammer = [threading.Thread(target=lambda: answers.append(raw_command(daemon, HEAVY))) for _ in range(9)]
    hammer.append(threading.Thread(target=raw_command, args=(daemon, HEAVY, 0.1)))  # gives up mid-search
    for t in hammer:
        t.start()
    time.sleep(0.3)
    bob = daemon.token(BOB)
    started = time.monotonic()
    status, _, body = daemon.http("GET", "/api/emails?mailbox=INBOX", token=bob)
    assert status == 200 and [i["subject"] for i in json.loads(body)["items"]] == ["for bob"]
    assert time.monotonic() - started < 5
    for t in hammer:
        t.join(60)
    assert len(answers) == 9 and all(a.startswith(b"c NO [LIMIT]") for a in answers), answers
    log = Path(daemon.log).read_text(errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]
