"""Body sinks and body limits follow the path the router routes (issue 13, item 2).

``PUT /dav/%66iles/...`` used to get the calendar tree's body sink (chosen on the raw path) while
the router sent it to the files tree (decoded path): a 500 with a critical log for the owner's
own upload. Every percent-encoded spelling of a mount must land in the tree the router picks, or
get a clean 4xx — never a 500. All services installed, SQLite and PostgreSQL, raw HTTP bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher

from tests.support.http import parse_response
from tests.support.suite import Suite, make_suite

BOB = "bob@example.test"


@pytest.fixture
def suite(tmp_path: Path, db_url: str) -> Iterator[Suite]:
    s = make_suite(tmp_path / "tau", db_url, {BOB: False})
    yield s
    s.registry.db.close()


@pytest.fixture
def errors() -> Iterator[list[dict[str, Any]]]:
    """Log events at error level or above (an unhandled error is logged critical)."""
    seen: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is not None and level >= LogLevel.error:
            seen.append(event)

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


def raw(suite: Suite, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    channel = suite.host.http.site.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    head = [f"{method} {path} HTTP/1.1", "Host: localhost", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    channel.dataReceived(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return parse_response(transport.value())


def auth(suite: Suite, scope: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + str(suite.registry.tokens.issue(BOB, scope=scope))}


def fetch(suite: Suite, name: str) -> Any:
    return raw(suite, "GET", f"/dav/files/{BOB}/{name}", b"", auth(suite, "files"))


def test_an_encoded_files_mount_reaches_the_files_tree(suite: Suite, errors: list[dict[str, Any]]) -> None:
    files = auth(suite, "files")
    for n, path in enumerate([f"/dav/%66iles/{BOB}/a.txt", f"/%64av/files/{BOB}/b.txt",
                              f"/dav/%66%69%6c%65%73/{BOB}/c.txt"]):
        body = b"body %d" % n
        r = raw(suite, "PUT", path, body, files)
        assert r.status == 201, (path, r.status, r.body[:300])
        assert fetch(suite, path.rsplit("/", 1)[-1]).body == body
    assert errors == []


def test_encoded_separators_are_a_clean_refusal(suite: Suite, errors: list[dict[str, Any]]) -> None:
    files, calendar = auth(suite, "files"), auth(suite, "calendar")
    for path in [f"/dav%2Ffiles/{BOB}/d.txt", f"/dav/files%2F{BOB}/e.txt", f"/dav/%66iles%2F{BOB}%2Ff.txt",
                 f"/dav%2F%66iles%2F{BOB}/g.txt", f"/dav/files/{BOB}%2Fh.txt", f"/dav/files/%2e%2e/calendars/{BOB}/i"]:
        for headers in (files, calendar):
            r = raw(suite, "PUT", path, b"x" * 100, headers)
            assert 400 <= r.status < 500, (path, r.status, r.body[:300])
    assert errors == []


def test_an_encoded_mount_name_is_checked_for_its_own_scope(suite: Suite) -> None:
    """A calendar token cannot reach the files tree by spelling it ``%66iles``, nor the reverse."""
    r = raw(suite, "PUT", f"/dav/%66iles/{BOB}/a.txt", b"x", auth(suite, "calendar"))
    assert r.status == 403 and r.json()["error"] == "insufficient_scope" and r.json()["scope"] == "files"
    r = raw(suite, "PUT", f"/dav/%63alendars/{BOB}/personal/a.ics", b"x", auth(suite, "files"))
    assert r.status == 403 and r.json()["scope"] == "calendar"


def test_the_files_tree_body_limit_follows_the_decoded_path(suite: Suite) -> None:
    """The calendar mount's 16 MiB limit does not apply to the files tree spelt ``%66iles``."""
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    channel = suite.host.http.site.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    head = (f"PUT /dav/%66iles/{BOB}/big.bin HTTP/1.1\r\nHost: localhost\r\nContent-Length: {20 << 20}\r\n"
            f"Authorization: {auth(suite, 'files')['Authorization']}\r\nExpect: 100-continue\r\n\r\n")
    channel.dataReceived(head.encode())
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    transport.loseConnection()
