"""Keywords in FLAGS and \\Recent with real clients (imapclient, imaplib, raw sockets) against the real
daemon, on every database engine: the same behaviour as tests/mail/test_imap_keywords.py and
test_imap_recent.py, here with real concurrency between connections and the bus in between."""

from __future__ import annotations

import imaplib
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e

ALICE = "alice@example.test"
PASSWORD = "secret-Pa55"


def msg(subject: str) -> bytes:
    return (f"From: bob@example.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nbody\r\n").encode()


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"flags-{request.param}"), database_url=url,
                  listeners=("smtp", "imap", "http")).init()
    d.add_user(ALICE)
    d.start("imap")
    yield d
    d.stop()


def connect(daemon: TauDaemon) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=10)
    m.login(ALICE, PASSWORD)
    return m


def test_imapclient_sees_keywords_in_flags_and_permanentflags(daemon: TauDaemon) -> None:
    imapclient = pytest.importorskip("imapclient")
    c = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imap"], ssl=False, timeout=10)
    c.login(ALICE, PASSWORD)
    c.create_folder("Kw")
    c.append("Kw", msg("one"), flags=[b"$Work"])
    info = c.select_folder("Kw")
    assert b"$Work" in info[b"FLAGS"]
    assert b"$Work" in info[b"PERMANENTFLAGS"] and b"\\*" in info[b"PERMANENTFLAGS"]
    assert b"$Work" in c.select_folder("Kw", readonly=True)[b"FLAGS"]
    c.logout()


def test_imapclient_status_recent_after_append(daemon: TauDaemon) -> None:
    """imapclient's livetest test_status: APPEND to a mailbox nobody has selected."""
    imapclient = pytest.importorskip("imapclient")
    c = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imap"], ssl=False, timeout=10)
    c.login(ALICE, PASSWORD)
    c.create_folder("Status")
    c.append("Status", msg("status"))
    assert c.folder_status("Status", ["MESSAGES", "RECENT"]) == {b"MESSAGES": 1, b"RECENT": 1}
    c.logout()


def test_recent_goes_to_exactly_one_of_two_concurrent_selects(daemon: TauDaemon) -> None:
    setup = connect(daemon)
    setup.create("Race")
    for i in range(5):
        setup.append("Race", None, None, msg(f"race {i}"))
    setup.logout()
    sessions = [connect(daemon) for _ in range(2)]
    counts: list[int] = []
    start = threading.Barrier(2)

    def select(m: imaplib.IMAP4) -> None:
        start.wait()
        m.select("Race")
        counts.append(int(m.response("RECENT")[1][0]))

    threads = [threading.Thread(target=select, args=(m,)) for m in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(counts) == [0, 5]
    flagged = [sum(b"\\Recent" in line for line in m.fetch("1:*", "(FLAGS)")[1]) for m in sessions]
    assert sorted(flagged) == [0, 5]
    for m in sessions:
        m.logout()


def test_idling_raw_socket_hears_flags_before_fetch_with_new_keyword(daemon: TauDaemon) -> None:
    setup = connect(daemon)
    setup.create("Idle")
    setup.append("Idle", None, None, msg("idle"))
    setup.logout()
    with socket.create_connection(("127.0.0.1", daemon.ports["imap"]), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f'a LOGIN "{ALICE}" "{PASSWORD}"\r\nb SELECT Idle\r\nc IDLE\r\n'.encode())
        while not f.readline().startswith(b"+"):
            pass
        other = connect(daemon)
        other.select("Idle")
        other.store("1", "+FLAGS.SILENT", "(Urgent-Label)")
        lines = [f.readline() for _ in range(3)]
        assert re.fullmatch(rb"\* FLAGS \(.*Urgent-Label\)\r\n", lines[0])
        assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b"Urgent-Label" in lines[1]
        assert re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \((\\Recent )?Urgent-Label( \\Recent)?\)\)\r\n", lines[2])
        s.sendall(b"DONE\r\n")
        assert f.readline().startswith(b"c OK")
        other.logout()
