"""Issue 13 item 10: a blob store that stops answering (EIO, a vanished mount, S3 down) gives 503 with
Retry-After on DAV, REST and share downloads and uploads — and a bug stays a 500. Both engines.

The database side is tested against a real daemon in tests/e2e/test_faults_daemon.py.
"""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest

from .conftest import ALICE

JSON = {"Content-Type": "application/json"}


def _break(cloud: Any, monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    backend = cloud.registry.blob_backend

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    for name in ("new_upload", "read_range", "open_range", "size"):
        monkeypatch.setattr(backend, name, fail)


def _unavailable(r: Any) -> None:
    assert r.status == 503, (r.status, r.body[:300])
    assert r.header("retry-after") == "5"
    assert r.header("etag") is None  # no entity headers of the file that was not sent


def test_blob_store_outage_answers_503(cloud: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud.registry.reactor.advance(2)  # tokens issued after the users' password stamps
    assert cloud.dav("PUT", "doc.txt", b"contents").status == 201
    fid = cloud.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    link = cloud.api("POST", "/api/shares", json.dumps({"file_id": fid}).encode(), headers=JSON).json()["token"]
    _break(cloud, monkeypatch, OSError(errno.EIO, "Input/output error"))
    _unavailable(cloud.dav("GET", "doc.txt"))
    _unavailable(cloud.api("GET", f"/api/files/{fid}"))
    _unavailable(cloud.client.get(f"/s/{link}"))
    _unavailable(cloud.dav("PUT", "new.txt", b"new contents"))
    _unavailable(cloud.api("POST", "/api/files?path=/up.txt", b"up"))
    monkeypatch.undo()
    assert cloud.dav("GET", "doc.txt").body == b"contents"
    assert cloud.dav("GET", "new.txt").status == 404


def test_a_bug_is_still_a_500(cloud: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cloud.dav("PUT", "doc.txt", b"contents").status == 201
    _break(cloud, monkeypatch, ValueError("a bug, not an outage"))
    r = cloud.dav("GET", f"/dav/files/{ALICE}/doc.txt")
    assert r.status == 500 and r.header("retry-after") is None
