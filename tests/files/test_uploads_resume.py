"""A resumable upload survives a connection cut mid-chunk (issue 19), against a real daemon on both
engines: three chunks, the second cut halfway, the offset asked for, the upload resumed, the file
byte-exact (sha256)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

ALICE = "alice@example.test"
CHUNK = 3 * 1024 * 1024


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    d = TauDaemon(tmp_path_factory.mktemp("uploads"), database_url=daemon_database_url(request),
                  listeners=("http",)).init()
    d.add_user(ALICE)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _cut_chunk(d: TauDaemon, token: str, upload_id: str, start: int, chunk: bytes, total: int) -> None:
    """Send the chunk's headers and half its bytes, then drop the connection."""
    head = (f"PUT /api/uploads/{upload_id} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(chunk)}\r\nContent-Range: bytes {start}-{start + len(chunk) - 1}/{total}\r\n"
            "\r\n").encode()
    with socket.create_connection(("127.0.0.1", d.ports["http"]), timeout=10) as sock:
        sock.sendall(head + chunk[:len(chunk) // 2])
        time.sleep(0.5)


def _offset(d: TauDaemon, token: str, upload_id: str) -> int:
    status, headers, body = d.http("GET", f"/api/uploads/{upload_id}", token=token)
    assert status == 200, body
    assert headers["upload-offset"] == str(json.loads(body)["offset"])
    return int(json.loads(body)["offset"])


def test_cut_chunk_resumes_from_the_committed_offset(daemon: TauDaemon, tmp_path: Path) -> None:
    token = daemon.token(ALICE)
    data = os.urandom(3 * CHUNK - 12345)
    create = json.dumps({"path": "/video.bin", "size": len(data)}).encode()
    status, _, body = daemon.http("POST", "/api/uploads", create, {"Content-Type": "application/json"}, token=token)
    assert status == 201, body
    upload_id = json.loads(body)["id"]
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    put = {"Content-Range": f"bytes 0-{CHUNK - 1}/{len(data)}"}
    assert daemon.http("PUT", f"/api/uploads/{upload_id}", chunks[0], put, token=token)[0] == 200
    _cut_chunk(daemon, token, upload_id, CHUNK, chunks[1], len(data))
    deadline = time.monotonic() + 15
    while (offset := _offset(daemon, token, upload_id)) != CHUNK and time.monotonic() < deadline:
        time.sleep(0.2)
    assert offset == CHUNK  # the half chunk left nothing behind
    for i, chunk in enumerate(chunks[1:], start=1):
        start = _offset(daemon, token, upload_id)
        assert start == i * CHUNK
        status, _, body = daemon.http("PUT", f"/api/uploads/{upload_id}?offset={start}", chunk, token=token)
        assert status == (201 if i == len(chunks) - 1 else 200), body
    file_id = json.loads(body)["id"]
    status, _, got = daemon.http("GET", f"/api/files/{file_id}", token=token)
    assert status == 200 and hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
