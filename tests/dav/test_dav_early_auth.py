"""A PUT is authenticated when its headers arrive: a refused one stores nothing of its body."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from tau.auth import accounts
from tau.auth.authenticator import LoginFailed

ALICE = "alice@example.test"
BIG = 10 * 1024 * 1024


class Conn:
    """One raw HTTP connection to the in-process site, fed by hand (part of a body, then more)."""

    def __init__(self, cloud: Any) -> None:
        self.channel = cloud.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def head(self, method: str, path: str, length: int, headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    @property
    def output(self) -> bytes:
        return self.transport.value()


def _count_uploads(cloud: Any) -> list[int]:
    backend = cloud.registry.blob_backend
    calls: list[int] = []
    original = backend.new_upload

    def counting() -> Any:
        calls.append(1)
        return original()

    backend.new_upload = counting
    return calls


def test_put_without_credentials_is_refused_before_the_body(cloud) -> None:
    uploads = _count_uploads(cloud)
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/anon.bin", BIG)
    conn.send(b"q" * 2_000_000)  # more than a blob batch: before the fix this reached the store
    assert conn.output.startswith(b"HTTP/1.1 401 "), conn.output[:200]
    assert b"WWW-Authenticate: Basic" in conn.output and b"Connection: close" in conn.output
    assert conn.transport.disconnecting
    conn.send(b"q" * 2_000_000)  # the rest of the body is ignored
    assert uploads == [] and cloud.temp_files() == [] and cloud.blob_keys() == []
    assert conn.output.count(b"HTTP/1.1") == 1


def test_put_with_a_wrong_password_is_refused_before_the_body(cloud) -> None:
    uploads = _count_uploads(cloud)
    conn = Conn(cloud)
    bad = cloud.basic(ALICE, "not-the-password")
    conn.head("PUT", f"/dav/files/{ALICE}/anon.bin", BIG, bad)
    conn.send(b"q" * 1_500_000)
    assert conn.output.startswith(b"HTTP/1.1 401 ") and conn.transport.disconnecting
    assert uploads == [] and cloud.temp_files() == [] and cloud.blob_keys() == []


def test_expect_continue_gets_401_instead_of_100(cloud) -> None:
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/e.bin", BIG, {"Expect": "100-continue"})
    assert conn.output.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in conn.output


def test_expect_continue_gets_100_once_authenticated(cloud) -> None:
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/e.bin", 5, {"Expect": "100-continue", **cloud.basic()})
    assert conn.output == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"hello")
    assert b"HTTP/1.1 201 " in conn.output
    assert cloud.dav("GET", "e.bin").body == b"hello"


def test_an_authenticated_put_is_checked_once(cloud) -> None:
    authenticator = cloud.registry.authenticator
    calls: list[str] = []
    original = authenticator.authenticate

    async def counting(address: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(address)
        return await original(address, *args, **kwargs)

    authenticator.authenticate = counting
    assert cloud.dav("PUT", "once.txt", b"x" * 5000).status == 201
    assert calls == [ALICE]
    assert cloud.dav("GET", "once.txt").body == b"x" * 5000


def test_body_is_held_while_the_check_runs_then_stored(cloud) -> None:
    """A slow check (argon2, LDAP) holds a bounded piece of the body and pauses the client."""
    authenticator = cloud.registry.authenticator
    pending: list[Deferred[Any]] = []
    original = authenticator.authenticate

    def slow(*args: Any, **kwargs: Any) -> Deferred[Any]:
        pending.append(Deferred())
        return pending[-1]

    authenticator.authenticate = slow
    uploads = _count_uploads(cloud)
    body = bytes(range(256)) * 8192  # 2 MiB
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/slow.bin", len(body), cloud.basic())
    conn.send(body[:1_000_000])
    assert conn.transport.producerState == "paused" and uploads == [] and conn.output == b""
    authenticator.authenticate = original
    pending[0].callback(cloud.registry.db.sync.run("u", accounts.get_user, ALICE))
    assert conn.transport.producerState == "producing"
    conn.send(body[1_000_000:])
    assert b"HTTP/1.1 201 " in conn.output, conn.output[:300]
    assert cloud.dav("GET", "slow.bin").body == body


def test_body_complete_before_a_refusal_is_answered_normally(cloud) -> None:
    """A small PUT that is wholly in before the (slow) check fails gets an ordinary 401."""
    pending: list[Deferred[Any]] = []

    def slow(*args: Any, **kwargs: Any) -> Deferred[Any]:
        pending.append(Deferred())
        return pending[-1]

    cloud.registry.authenticator.authenticate = slow
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/s.txt", 3, cloud.basic(ALICE, "wrong"))
    conn.send(b"abc")
    pending[0].errback(LoginFailed("invalid credentials"))
    assert conn.output.startswith(b"HTTP/1.1 401 ") and b'"error": "unauthorized"' in conn.output
    assert cloud.temp_files() == [] and cloud.blob_keys() == []


def test_rest_upload_without_a_token_stores_nothing(cloud) -> None:
    uploads = _count_uploads(cloud)
    conn = Conn(cloud)
    conn.head("POST", "/api/files?path=/x.bin", BIG)
    conn.send(b"z" * 1_500_000)
    assert conn.output.startswith(b"HTTP/1.1 401 ") and conn.transport.disconnecting
    assert uploads == [] and cloud.blob_keys() == []
    assert cloud.api("POST", "/api/files?path=/y.bin", b"ok").status == 201


def test_a_sink_that_cannot_be_created_is_a_500_not_a_hang(cloud) -> None:
    site = cloud.site
    for i, (prefix, methods, _factory, auth) in enumerate(site.body_sinks):
        if auth is not None and b"PUT" in methods:
            site.body_sinks[i] = (prefix, methods, lambda request, length: 1 / 0, auth)
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/x.bin", BIG, cloud.basic())
    conn.send(b"q" * 1000)
    assert conn.output.startswith(b"HTTP/1.1 500 ") and conn.transport.disconnecting
    conn = Conn(cloud)
    conn.head("PUT", f"/dav/files/{ALICE}/y.bin", 3, cloud.basic())
    conn.send(b"abc")  # all in before the check: the router answers
    assert b"HTTP/1.1 500 " in conn.output
