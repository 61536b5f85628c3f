"""COMPRESS=DEFLATE (RFC 4978) against the real daemon over real sockets, on implicit TLS (imaps)
and on plain loopback (imap), SQLite and PostgreSQL: a 1 MB APPEND inflated by the server and
FETCHed back byte-exact through the client's zlib, then an IDLE push that arrives compressed."""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import zlib
from collections.abc import Iterator

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"compress-{request.param}"), database_url=url,
                  listeners=("imap", "imaps", "http"))
    try:
        d.init()
        d.add_user(ALICE, PASSWORD)
        d.start()
        yield d
    finally:
        d.stop()


class Wire:
    """A raw IMAP client socket that can switch to raw deflate both ways."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.wire_in = 0

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def until(self, end: bytes) -> bytes:
        while end not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf[-200:])
            self.wire_in += len(chunk)
            self.buf += self.inflate.decompress(chunk) if self.inflate is not None else chunk
        cut = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return out

    def command(self, tag: str, line: bytes) -> bytes:
        """Send a command; every line up to and including its tagged response."""
        self.send(tag.encode() + b" " + line + b"\r\n")
        out = b""
        while True:
            got = self.until(b"\r\n")
            out += got
            if got.startswith(tag.encode() + b" "):
                return out

    def compress(self) -> None:
        assert self.command("z", b"COMPRESS DEFLATE").endswith(b"z OK DEFLATE active\r\n")
        assert self.buf == b""
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)


def connect(daemon: TauDaemon, tls: bool) -> Wire:
    sock = socket.create_connection(("127.0.0.1", daemon.ports["imaps" if tls else "imap"]), timeout=20)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    w = Wire(sock)
    w.until(b"\r\n")
    assert b" OK " in w.command("l", b'LOGIN "%s" "%s"' % (ALICE.encode(), PASSWORD.encode()))
    return w


@pytest.mark.parametrize("tls", [True, False], ids=["imaps", "loopback"])
def test_compressed_session(daemon: TauDaemon, tls: bool) -> None:
    w = connect(daemon, tls)
    w.compress()
    box = f"Compressed{int(tls)}"
    assert w.command("c", f"CREATE {box}".encode()).endswith(b"c OK Create completed\r\n")
    body = base64.encodebytes(os.urandom(768 * 1024)).replace(b"\n", b"\r\n")
    raw = b"From: bob@example.test\r\nSubject: big\r\n\r\n" + body
    w.send(b"a APPEND %s {%d+}\r\n" % (box.encode(), len(raw)) + raw + b"\r\n")
    assert re.match(rb"a OK \[APPENDUID \d+ 1\]", w.until(b"\r\n"))
    assert b"s OK [READ-WRITE]" in w.command("s", b"SELECT " + box.encode())
    before = w.wire_in
    out = w.command("f", b"FETCH 1 BODY.PEEK[]")
    assert out == b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nf OK FETCH completed\r\n" % (len(raw), raw)
    assert w.wire_in - before < len(out) * 0.9
    w.send(b"i IDLE\r\n")
    assert w.until(b"\r\n") == b"+ idling\r\n"
    other = connect(daemon, not tls)
    small = b"Subject: ping\r\n\r\nhello\r\n"
    assert b" OK [APPENDUID" in other.command("b", b"APPEND %s {%d+}\r\n%s" % (box.encode(), len(small), small))
    assert w.until(b"\r\n") == b"* 2 EXISTS\r\n"
    assert w.until(b"\r\n") == b"* 2 RECENT\r\n"  # this session has the mailbox selected: both are its recent ones
    w.send(b"DONE\r\n")
    assert w.until(b"\r\n") == b"i OK Idle completed\r\n"
    assert w.command("y", b"COMPRESS DEFLATE") == b"y NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"
    assert w.command("o", b"LOGOUT").endswith(b"o OK Logout completed\r\n")
