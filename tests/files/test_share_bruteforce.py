"""Issue 13, item 7: share-link passwords cannot be brute-forced, and password hashing cannot
starve other work. 300 guesses get 429 + Retry-After after a few (throttled per link and per IP
like logins, no argon2 run while locked) while the right password from another address still
works; 24 anonymous guessers never have more than ``[limits] password_hashes`` argon2 runs in
flight, a bounded queue waits, the rest get 503 + Retry-After, and alice's download is not held."""

from __future__ import annotations

import base64
import json

import pytest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tau.auth.hashgate import HashBusy, HashGate
from tests.support.http import parse_response

ATTACKER, FRIEND = "203.0.113.66", "198.51.100.20"
SECRET = "open sesame"


def password_link(cloud, body: bytes = b"PHOTO-BYTES") -> str:
    fid = cloud.api("POST", "/api/files?path=/photo.jpg", body).json()["id"]
    r = cloud.api("POST", "/api/shares", json.dumps({"file_id": fid, "password": SECRET}).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 201
    return r.json()["token"]


def test_share_password_guessing_gets_429_and_the_right_password_still_works(cloud, monkeypatch) -> None:
    from tau.files import shares

    token = password_link(cloud)
    hashed: list[str] = []
    real = shares.verify_password
    monkeypatch.setattr(shares, "verify_password", lambda stored, given: hashed.append(given) or real(stored, given))
    answers = [cloud.client.get(f"/s/{token}?password=guess{i}", ip=ATTACKER) for i in range(300)]
    statuses = [a.status for a in answers]
    first = statuses.index(429)
    assert 3 <= first <= 12 and set(statuses[:first]) == {401}
    assert set(statuses[first:]) == {429}                      # locked: every later guess refused
    assert len(hashed) == first                                # ... without running argon2 for it
    refused = answers[-1]
    assert int(refused.header("retry-after")) >= 1
    assert refused.json()["error"] == "too_many_attempts" and "request_id" in refused.json()
    # Basic credentials are the same guesses
    basic = {"Authorization": "Basic " + base64.b64encode(b"x:guess").decode()}
    assert cloud.client.get(f"/s/{token}", headers=basic, ip=ATTACKER).status == 429
    # the right password: refused from the locked address (no oracle), served from another one
    assert cloud.client.get(f"/s/{token}?password=open%20sesame", ip=ATTACKER).status == 429
    ok = cloud.client.get(f"/s/{token}?password=open%20sesame", ip=FRIEND)
    assert ok.status == 200 and ok.body == b"PHOTO-BYTES"
    # the lock is a back-off, not a ban
    cloud.registry.reactor.advance(int(refused.header("retry-after")))
    assert cloud.client.get(f"/s/{token}?password=open%20sesame", ip=ATTACKER).status == 200


def test_guesses_on_one_link_do_not_lock_another_link(cloud) -> None:
    token = password_link(cloud)
    other = password_link(cloud, b"OTHER")
    for i in range(30):
        cloud.client.get(f"/s/{token}?password=bad{i}", ip=ATTACKER)
    assert cloud.client.get(f"/s/{token}?password=bad", ip=ATTACKER).status == 429
    # the attacker's address is locked for that link only; the owner's other link still answers
    assert cloud.client.get(f"/s/{other}?password=open%20sesame", ip=FRIEND).status == 200


class ManualPool:
    """A hashing pool whose jobs finish when the test says so; records how many ran at once."""

    def __init__(self) -> None:
        self.pending: list[tuple[defer.Deferred, object, tuple]] = []
        self.most = 0

    def run(self, fn, *args):
        d: defer.Deferred = defer.Deferred()
        self.pending.append((d, fn, args))
        self.most = max(self.most, len(self.pending))
        return d

    def finish_one(self) -> None:
        d, fn, args = self.pending.pop(0)
        d.callback(fn(*args))


def open_request(site, path: str, ip: str) -> StringTransport:
    addr = IPv4Address("TCP", ip, 40000)
    channel = site.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    channel.makeConnection(transport)
    channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    return transport


def test_24_guessers_never_run_more_than_two_hashes_at_once(cloud) -> None:
    token = password_link(cloud)
    fid = cloud.api("POST", "/api/files?path=/alice.bin", b"A" * 4096).json()["id"]
    pool = ManualPool()
    gate = HashGate(pool.run, 2, 8)
    cloud.registry.provide("hash_gate", gate)
    guessers = [open_request(cloud.site, f"/s/{token}?password=guess{i}", f"192.0.2.{i + 1}") for i in range(24)]
    assert len(pool.pending) == 2 and gate.active == 2 and gate.waiting == 8
    busy = [parse_response(t.value()) for t in guessers if t.value()]
    assert len(busy) == 14 and {r.status for r in busy} == {503}
    assert all(r.header("retry-after") for r in busy) and busy[0].json()["error"] == "unavailable"
    # alice's download does not wait behind the guessers' hashing
    download = cloud.api("GET", f"/api/files/{fid}")
    assert download.status == 200 and download.body == b"A" * 4096
    while pool.pending:
        pool.finish_one()
        assert gate.active <= 2
    assert pool.most == 2 and gate.peak == 2
    answered = [parse_response(t.value()).status for t in guessers]
    assert sorted(answered) == [401] * 10 + [503] * 14
    # the friend with the right password gets in once a hasher is free
    friend = open_request(cloud.site, f"/s/{token}?password=open%20sesame", FRIEND)
    pool.finish_one()
    assert parse_response(friend.value()).status == 200


def test_hash_gate_bounds_queues_in_order_and_refuses_the_excess() -> None:
    pool = ManualPool()
    gate = HashGate(pool.run, 2, 3)
    results: list[object] = []
    calls = [gate.run(lambda n: n, n) for n in range(5)]
    for d in calls:
        d.addBoth(results.append)
    assert len(pool.pending) == 2 and gate.waiting == 3
    overflow = gate.run(lambda: None)
    failure: list = []
    overflow.addErrback(failure.append)
    assert failure and failure[0].check(HashBusy) and failure[0].value.retry_after > 0
    calls[4].cancel()                                  # a client that went away leaves the queue
    assert gate.waiting == 2
    while pool.pending:
        pool.finish_one()
        assert len(pool.pending) <= 2
    cancelled = [r for r in results if isinstance(r, Failure)]
    assert len(cancelled) == 1 and cancelled[0].check(defer.CancelledError)
    assert [r for r in results if not isinstance(r, Failure)] == [0, 1, 2, 3]   # first come, first served
    assert gate.peak == 2 and gate.active == 0


def test_a_failing_hash_frees_its_slot() -> None:
    def boom(*args):
        raise RuntimeError("argon2 exploded")

    gate = HashGate(lambda fn, *a: defer.maybeDeferred(fn, *a), 1, 0)
    errors: list = []
    gate.run(boom).addErrback(errors.append)
    assert errors and gate.active == 0
    out: list = []
    gate.run(lambda: 42).addCallback(out.append)
    assert out == [42]


@pytest.mark.parametrize("protocol", ["imap", "http"])
def test_logins_are_told_to_retry_when_the_hashing_queue_is_full(cloud, protocol) -> None:
    """HashBusy is a LoginThrottled: every protocol already answers it as "try again later"."""
    from tests.support.imap import IMAPEnv

    pool = ManualPool()
    cloud.registry.provide("hash_gate", HashGate(pool.run, 1, 0))
    cloud.registry.authenticator.forget()
    first = open_request(cloud.site, "/api/me", FRIEND)   # no credentials: no hashing
    assert parse_response(first.value()).status == 401
    basic = {"Authorization": "Basic " + base64.b64encode(b"alice@example.test:wrong-password").decode()}
    holder = StringTransport()
    holder_channel = cloud.site.buildProtocol(IPv4Address("TCP", FRIEND, 1))
    holder_channel.makeConnection(holder)
    holder_channel.dataReceived(b"GET /dav/files/alice@example.test/ HTTP/1.1\r\nHost: x\r\nAuthorization: "
                                + basic["Authorization"].encode() + b"\r\n\r\n")
    assert len(pool.pending) == 1                         # the one hasher is busy
    if protocol == "http":
        r = cloud.client.get("/dav/files/alice@example.test/", headers=basic, ip="192.0.2.77")
        assert r.status == 429 and r.header("retry-after")
    else:
        c = IMAPEnv(cloud.registry).client(peer="127.0.0.1")        # loopback: LOGIN without TLS
        lines = c.cmd('a1 LOGIN "alice@example.test" "wrong-password"')
        assert lines[-1].startswith("a1 NO [UNAVAILABLE]")
    pool.finish_one()
    assert parse_response(holder.value()).status == 401
