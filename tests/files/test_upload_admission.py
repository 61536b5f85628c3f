"""Uploads are judged when their headers arrive, not after their body is on disk (issue 13).

Item 2: a token without the ``files`` scope is refused before a byte of a ``POST /api/files`` or
DAV PUT body is stored (the early check asks the router for the route's scope). Quotas: a
declared length over the room left is refused at once; a chunked body is cut as soon as it passes
it, and its partial blob is deleted. Raw HTTP bytes through the real site, SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tau.http.site import ADMIT_ABOVE
from tests.support.http import parse_response

ALICE, BOB = "alice@example.test", "bob@example.test"
BIG = 200 * 1024 * 1024
QUOTA = 1024 * 1024
BOUNDARY = "BOUNDARY"


class Conn:
    """One raw HTTP connection to the in-process site, fed by hand."""

    def __init__(self, site: Any) -> None:
        peer = IPv4Address("TCP", "127.0.0.1", 40000)
        self.channel = site.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def head(self, method: str, path: str, length: int | None, headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    @property
    def output(self) -> bytes:
        return self.transport.value()

    def response(self) -> Any:
        return parse_response(self.output)


def bearer(cloud: Any, user: str, scope: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + str(cloud.registry.tokens.issue(user, scope=scope))}


def count_uploads(cloud: Any) -> list[int]:
    backend = cloud.registry.blob_backend
    calls: list[int] = []
    original = backend.new_upload

    def counting() -> Any:
        calls.append(1)
        return original()

    backend.new_upload = counting
    return calls


def multipart_head(name: str = "big.bin") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()


MULTIPART_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def set_quota(cloud: Any, user: str, quota: int) -> None:
    cloud.registry.db.sync.run("q", lambda txn: txn.execute(
        "UPDATE users SET quota_bytes = ? WHERE address = ?", (quota, user)))


def assert_refused_at_headers(conn: Conn, status: int, cloud: Any, uploads: list[int]) -> Any:
    assert conn.output.startswith(b"HTTP/1.1 %d " % status), conn.output[:300]
    assert b"Connection: close" in conn.output and conn.transport.disconnecting
    conn.send(b"\0" * 1_500_000)  # the rest of the body is never read
    assert conn.output.count(b"HTTP/1.1") == 1
    assert uploads == [] and cloud.temp_files() == [] and cloud.blob_keys() == []
    return conn.response()


# -- item 2: the scope of the route, at the headers ----------------------------------------------
def test_rest_upload_with_a_calendar_token_is_refused_before_the_body(cloud) -> None:
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/", BIG, {**bearer(cloud, ALICE, "calendar"), **MULTIPART})
    conn.send(multipart_head() + b"\0" * 2_000_000)  # past a blob batch: stored before the fix
    r = assert_refused_at_headers(conn, 403, cloud, uploads)
    assert r.json()["error"] == "insufficient_scope" and r.json()["scope"] == "files"
    assert 'error="insufficient_scope"' in (r.header("www-authenticate") or "")


def test_rest_upload_with_a_calendar_token_in_the_query_is_refused_too(cloud) -> None:
    uploads = count_uploads(cloud)
    token = cloud.registry.tokens.issue(ALICE, scope="calendar")
    conn = Conn(cloud.site)
    conn.head("POST", f"/api/files?path=/x.bin&access_token={token}", BIG)
    conn.send(b"\0" * 2_000_000)
    assert assert_refused_at_headers(conn, 403, cloud, uploads).json()["error"] == "insufficient_scope"


def test_expect_continue_gets_the_403_not_100(cloud) -> None:
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/x.bin", BIG, {**bearer(cloud, ALICE, "calendar"), "Expect": "100-continue"})
    assert b"100 Continue" not in conn.output
    assert_refused_at_headers(conn, 403, cloud, uploads)


def test_dav_put_with_a_calendar_token_is_refused_before_the_body(cloud) -> None:
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("PUT", f"/dav/files/{ALICE}/big.bin", BIG, {**bearer(cloud, ALICE, "calendar"),
                                                          "Expect": "100-continue"})
    r = assert_refused_at_headers(conn, 403, cloud, uploads)
    assert r.json()["error"] == "insufficient_scope" and b"100 Continue" not in conn.output


def test_a_body_no_route_takes_is_refused_before_it_is_read(cloud) -> None:
    """``POST /api/files/7`` has no route: 405 at the headers, not after 200 MiB went to disk."""
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files/7", BIG, bearer(cloud, ALICE, "files"))
    conn.send(b"\0" * 2_000_000)
    r = assert_refused_at_headers(conn, 405, cloud, uploads)
    assert r.json()["error"] == "method_not_allowed"


def test_a_files_token_still_uploads_by_rest_and_dav(cloud) -> None:
    files = bearer(cloud, ALICE, "files")
    body = multipart_head("a.txt") + b"hello" + MULTIPART_TAIL
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/", len(body), {**files, **MULTIPART, "Expect": "100-continue"})
    assert conn.output == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(body)
    assert b"HTTP/1.1 201 " in conn.output, conn.output[:300]
    conn = Conn(cloud.site)
    conn.head("PUT", f"/dav/files/{ALICE}/b.txt", 3, files)
    conn.send(b"abc")
    assert conn.response().status == 201
    assert cloud.dav("GET", "a.txt").body == b"hello" and cloud.dav("GET", "b.txt").body == b"abc"


# -- quotas: at the headers, or as soon as the stream passes them -------------------------------
def test_dav_put_over_the_quota_is_refused_at_the_headers(cloud) -> None:
    set_quota(cloud, BOB, QUOTA)
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("PUT", f"/dav/files/{BOB}/huge.bin", BIG, {**cloud.basic(BOB), "Expect": "100-continue"})
    assert b"100 Continue" not in conn.output
    r = assert_refused_at_headers(conn, 507, cloud, uploads)
    assert (r.header("content-type") or "").startswith("application/xml")
    assert b"quota-not-exceeded" in r.body and b"DAV:" in r.body


def test_rest_upload_over_the_quota_is_refused_at_the_headers(cloud) -> None:
    set_quota(cloud, BOB, QUOTA)
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/", BIG, {**bearer(cloud, BOB, "files"), **MULTIPART})
    conn.send(multipart_head())
    assert assert_refused_at_headers(conn, 507, cloud, uploads).json()["error"] == "quota_exceeded"


def test_rest_upload_without_a_path_is_refused_at_the_headers(cloud) -> None:
    uploads = count_uploads(cloud)
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files", BIG, {**bearer(cloud, BOB, "files"), **MULTIPART})
    conn.send(multipart_head() + b"\0" * 2_000_000)
    assert assert_refused_at_headers(conn, 400, cloud, uploads).json()["error"] == "invalid_path"


def _stream_until_refused(conn: Conn, limit: int) -> int:
    sent = 0
    while not conn.transport.disconnecting and sent < limit:
        conn.chunk(b"\0" * 65536)
        sent += 65536
    return sent


def test_chunked_dav_put_is_cut_when_it_passes_the_quota(cloud) -> None:
    set_quota(cloud, BOB, QUOTA)
    conn = Conn(cloud.site)
    conn.head("PUT", f"/dav/files/{BOB}/huge.bin", None, cloud.basic(BOB))
    sent = _stream_until_refused(conn, 8 * QUOTA)
    assert sent <= QUOTA + 65536, sent  # cut at the first chunk past the quota
    r = conn.response()
    assert r.status == 507 and b"quota-not-exceeded" in r.body
    assert conn.transport.disconnecting and cloud.temp_files() == [] and cloud.blob_keys() == []
    assert cloud.dav("GET", "huge.bin", user=BOB).status == 404


def test_chunked_rest_upload_is_cut_when_it_passes_the_quota(cloud) -> None:
    set_quota(cloud, BOB, QUOTA)
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/", None, {**bearer(cloud, BOB, "files"), **MULTIPART})
    conn.chunk(multipart_head())
    sent = _stream_until_refused(conn, 8 * QUOTA)
    assert sent <= QUOTA + 65536, sent
    assert json.loads(conn.response().body)["error"] == "quota_exceeded"
    assert conn.response().status == 507
    assert conn.transport.disconnecting and cloud.temp_files() == [] and cloud.blob_keys() == []


def test_uploads_within_the_quota_still_work(cloud) -> None:
    set_quota(cloud, BOB, QUOTA)
    part = b"x" * (QUOTA // 4)
    conn = Conn(cloud.site)  # declared length
    conn.head("PUT", f"/dav/files/{BOB}/a.bin", len(part), cloud.basic(BOB))
    conn.send(part)
    assert conn.response().status == 201
    conn = Conn(cloud.site)  # chunked
    conn.head("PUT", f"/dav/files/{BOB}/b.bin", None, cloud.basic(BOB))
    conn.chunk(part[:100_000])
    conn.chunk(part[100_000:])
    conn.send(b"0\r\n\r\n")
    assert conn.response().status == 201, conn.output[:300]
    body = multipart_head("c.bin") + part + MULTIPART_TAIL  # REST multipart, declared
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/", len(body), {**bearer(cloud, BOB, "files"), **MULTIPART})
    conn.send(body)
    assert conn.response().status == 201, conn.output[:300]
    assert cloud.dav("GET", "c.bin", user=BOB).body == part


def test_replacing_a_file_counts_the_space_it_frees(cloud) -> None:
    """Near the quota, overwriting a big file with a slightly bigger one is not refused early."""
    set_quota(cloud, BOB, QUOTA)
    assert cloud.dav("PUT", "big.bin", b"a" * (QUOTA - 10_000), user=BOB).status == 201
    bigger = b"b" * (QUOTA - 5_000)
    conn = Conn(cloud.site)
    conn.head("PUT", f"/dav/files/{BOB}/big.bin", len(bigger), cloud.basic(BOB))
    conn.send(bigger)
    assert conn.response().status == 204, conn.output[:300]
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/big.bin", len(bigger) + 1, bearer(cloud, BOB, "files"))
    conn.send(bigger + b"c")
    assert conn.response().status == 201, conn.output[:300]
    conn = Conn(cloud.site)  # but not two of them (under ADMIT_ABOVE: refused where it is stored)
    conn.head("PUT", f"/dav/files/{BOB}/other.bin", len(bigger), cloud.basic(BOB))
    conn.send(bigger)
    assert conn.response().status == 507


def test_a_body_already_in_gets_the_same_quota_answer(cloud) -> None:
    """Headers and body in one packet: the router answers the admission's refusal, as DAV XML."""
    from twisted.internet.defer import Deferred, ensureDeferred

    set_quota(cloud, BOB, 1000)
    held: list[Any] = []
    lookup = cloud.tree.lookup

    def slow(user: Any, rest: list[str]) -> Any:  # the admission's query answers after the body is in
        d: Deferred[Any] = Deferred()
        held.append((d, user, rest))
        return d

    cloud.tree.lookup = slow
    conn = Conn(cloud.site)
    size = ADMIT_ABOVE + 2000  # over the size whose admission is skipped
    conn.head("PUT", f"/dav/files/{BOB}/x.bin", size, cloud.basic(BOB))
    conn.send(b"z" * size)
    assert conn.output == b"" and len(held) == 1
    cloud.tree.lookup = lookup
    d, user, rest = held[0]
    ensureDeferred(lookup(user, rest)).chainDeferred(d)
    r = conn.response()
    assert r.status == 507 and b"quota-not-exceeded" in r.body, conn.output[:300]
    assert (r.header("content-type") or "").startswith("application/xml")
    conn = Conn(cloud.site)
    conn.channel.dataReceived(b"POST /api/files?path=/y.bin HTTP/1.1\r\nHost: localhost\r\n"
                              + b"Content-Length: %d\r\n" % size
                              + f"Authorization: {bearer(cloud, BOB, 'files')['Authorization']}\r\n\r\n".encode()
                              + b"z" * size)
    assert conn.response().status == 507 and conn.response().json()["error"] == "quota_exceeded"
    assert cloud.temp_files() == [] and cloud.blob_keys() == []


def test_a_small_body_over_the_quota_is_refused_where_it_is_stored(cloud) -> None:
    """Bodies up to ADMIT_ABOVE skip the query at the headers; the exact check still refuses them."""
    set_quota(cloud, BOB, 1000)
    assert cloud.dav("PUT", "small.bin", b"z" * 2000, user=BOB).status == 507
    conn = Conn(cloud.site)
    conn.head("POST", "/api/files?path=/small.bin", 2000, bearer(cloud, BOB, "files"))
    conn.send(b"z" * 2000)
    assert conn.response().status == 507 and conn.response().json()["error"] == "quota_exceeded"
    assert cloud.temp_files() == [] and cloud.blob_keys() == []
