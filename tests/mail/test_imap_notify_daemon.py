"""NOTIFY (RFC 5465) on a real daemon, over raw sockets: SMTP delivery and another session's
APPEND reach a NOTIFY session as STATUS at once, with no NOOP or IDLE; another user's mail tells
it nothing; NOTIFY NONE stops it. SQLite and PostgreSQL."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.imap import message

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "secret-Pa55"


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp(f"notify-{request.param}")
    d = TauDaemon(folder, database_url=daemon_database_url(request), listeners=("imap", "smtp", "http"))
    d.init()
    d.add_user(ALICE, PASSWORD)
    d.add_user(BOB, PASSWORD)
    d.start("imap")
    yield d
    d.stop()


class Raw:
    """A bare socket speaking IMAP: what the server sends, unasked, is what the test reads."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.until(b"\r\n")

    def until(self, end: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while end not in self.buf:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def cmd(self, tag: str, line: str) -> bytes:
        self.sock.sendall(f"{tag} {line}\r\n".encode())
        out = self.until(f"{tag} OK".encode())
        return out + self.until(b"\r\n")

    def quiet(self, seconds: float) -> bytes:
        self.sock.settimeout(seconds)
        try:
            return self.buf + self.sock.recv(65536)
        except TimeoutError:
            return self.buf


def deliver(d: TauDaemon, to: str, n: int) -> None:
    with smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=60) as s:
        s.sendmail("sender@remote.test", [to], message(n))


@pytest.mark.e2e
def test_notify_over_sockets(daemon):
    a = Raw(daemon.ports["imap"])
    a.cmd("l", f'LOGIN "{ALICE}" "{PASSWORD}"')
    assert b" NOTIFY" in a.cmd("c", "CAPABILITY")
    assert a.cmd("n", "NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))").endswith(
        b"n OK NOTIFY completed\r\n")
    deliver(daemon, ALICE, 1)
    assert re.fullmatch(rb'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)\r\n', a.until(b"\r\n"))
    b = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    b.login(ALICE, PASSWORD)
    b.append("Archive", None, None, message(2))
    assert re.fullmatch(rb'\* STATUS "Archive" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)\r\n', a.until(b"\r\n"))
    deliver(daemon, BOB, 3)  # another user's mail: nothing
    b.select("INBOX")
    b.store("1", "+FLAGS", "(\\Seen)")
    assert re.fullmatch(rb'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 0\)\r\n', a.until(b"\r\n"))
    assert a.cmd("z", "NOTIFY NONE") == b"z OK NOTIFY completed\r\n"
    deliver(daemon, ALICE, 4)
    assert a.quiet(1.0) == b""
    b.logout()


@pytest.mark.e2e
def test_selected_mailbox_news_arrives_unasked(daemon):
    a = Raw(daemon.ports["imap"])
    a.cmd("l", f'LOGIN "{BOB}" "{PASSWORD}"')
    exists = int(re.search(rb"\* (\d+) EXISTS", a.cmd("s", "SELECT INBOX")).group(1))
    a.cmd("n", "NOTIFY SET (selected (MessageNew (UID) MessageExpunge))")
    deliver(daemon, BOB, 5)
    assert a.until(b"\r\n") == f"* {exists + 1} EXISTS\r\n".encode()
