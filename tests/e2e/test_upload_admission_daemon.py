"""Issue 13 items 2 and 7 against a real ``twistd -n tau`` on SQLite and PostgreSQL, over TCP: an
upload the server will refuse (token without ``files``, over the quota) is answered at its headers
and nothing of it reaches ``blobs/tmp``; a chunked one over the quota is cut right after it."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
BOB, CAROL = "bob@example.test", "carol@example.test"
QUOTA = 1 << 20
MIB = b"\0" * (1 << 20)


@pytest.fixture(scope="module", params=engines())
def daemon(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(f"admission-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    d.cli("user", "add", BOB, "--password-stdin", "--quota", str(QUOTA), input=PASSWORD.encode() + b"\n")
    d.add_user(CAROL, PASSWORD)
    d.start()
    yield d
    d.stop()


def token(d: TauDaemon, user: str, scope: str) -> str:
    status, _, body = d.http("POST", "/oauth2/token", urlencode(
        {"grant_type": "password", "username": user, "password": PASSWORD, "scope": scope}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    return str(json.loads(body)["access_token"])


def tmp_bytes(d: TauDaemon) -> int:
    tmp, total = d.data / "blobs" / "tmp", 0
    for p in (Path(tmp).iterdir() if tmp.exists() else ()):
        try:
            total += p.stat().st_size
        except FileNotFoundError:   # the daemon removed it between the listing and the stat
            pass
    return total


def push(d: TauDaemon, head: str, mib: int, chunked: bool = False) -> tuple[bytes, int, int]:
    """Send the headers, then up to ``mib`` MiB of body; (answer, MiB sent, peak bytes in blobs/tmp)."""
    sock = socket.create_connection(("127.0.0.1", d.ports["http"]))
    sock.settimeout(20)
    sock.sendall(head.encode())
    sent = peak = 0
    answer = b""
    try:
        while sent < mib:
            sock.sendall(b"100000\r\n" + MIB + b"\r\n" if chunked else MIB)
            sent += 1
            peak = max(peak, tmp_bytes(d))
        sock.sendall(b"0\r\n\r\n" if chunked else b"")
    except OSError:
        pass
    try:
        answer = sock.recv(4096)
    except OSError:
        pass
    sock.close()
    return answer, sent, max(peak, tmp_bytes(d))


def headers(method: str, path: str, tok: str, length: int | None, extra: str = "") -> str:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n{size}\r\n{extra}\r\n"


def test_a_calendar_token_stores_nothing_of_an_upload(daemon: TauDaemon) -> None:
    cal = token(daemon, CAROL, "calendar")
    for method, path, extra in (("POST", "/api/files?path=/", "Content-Type: multipart/form-data; boundary=B\r\n"),
                                ("PUT", f"/dav/files/{CAROL}/big.bin", "")):
        answer, sent, peak = push(daemon, headers(method, path, cal, 64 << 20, extra), 64)
        assert answer.startswith(b"HTTP/1.1 403 ") and b"insufficient_scope" in answer, (method, answer[:200])
        assert peak == 0 and sent < 64, (method, sent, peak)
    answer, _, _ = push(daemon, headers("POST", "/api/files?path=/", cal, 64 << 20, "Expect: 100-continue\r\n"), 0)
    assert answer.startswith(b"HTTP/1.1 403 ")


def test_a_declared_length_over_the_quota_is_refused_at_the_headers(daemon: TauDaemon) -> None:
    tok = token(daemon, BOB, "files")
    for method, path, check in (("PUT", f"/dav/files/{BOB}/huge.bin", b"quota-not-exceeded"),
                                ("POST", "/api/files?path=/huge.bin", b'"quota_exceeded"')):
        answer, sent, peak = push(daemon, headers(method, path, tok, 200 << 20), 200)
        assert answer.startswith(b"HTTP/1.1 507 ") and check in answer, (method, answer[:300])
        assert peak == 0 and sent < 200, (method, sent, peak)


def test_a_chunked_upload_is_cut_once_past_the_quota(daemon: TauDaemon) -> None:
    tok = token(daemon, BOB, "files")
    for method, path in (("PUT", f"/dav/files/{BOB}/chunked.bin"), ("POST", "/api/files?path=/chunked.bin")):
        answer, sent, peak = push(daemon, headers(method, path, tok, None), 64, chunked=True)
        assert answer.startswith(b"HTTP/1.1 507 "), (method, answer[:300])
        assert sent < 64 and peak <= 3 * QUOTA, (method, sent, peak)
        deadline = time.monotonic() + 5
        while tmp_bytes(daemon) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tmp_bytes(daemon) == 0
    small = b"y" * 1000
    status, _, _ = daemon.http("PUT", f"/dav/files/{BOB}/small.bin", small, token=tok)
    assert status == 201
    assert daemon.http("GET", f"/dav/files/{BOB}/small.bin", token=tok)[2] == small
