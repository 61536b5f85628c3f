"""Issue 13, item 7 on HTTP: the per-address connection cap of the listener ``AppHost.add_listener``
makes (503 JSON + Retry-After past it, trusted networks exempt), and slowloris request headers cut
after ``[limits] line_timeout`` (408 + close) however slowly the bytes keep coming."""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tau.app.connlimit import CappedFactory, Refusal
from tests.support.http import parse_response

LISTEN = {"http": "tcp:0:interface=127.0.0.1"}
ATTACKER = "203.0.113.66"


def connect(factory, ip: str):
    addr = IPv4Address("TCP", ip, 40000)
    transport = StringTransport(peerAddress=addr, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol = factory.buildProtocol(addr)
    protocol.makeConnection(transport)
    return protocol, transport


def test_http_listener_refuses_the_connection_over_the_per_address_cap(make_tau) -> None:
    tau = make_tau(listen=LISTEN, limits={"http_connections_per_ip": "3", "trusted_networks": "127.0.0.1/32"})
    factory = tau.host.listeners["http"].factory
    assert isinstance(factory, CappedFactory)
    held = [connect(factory, ATTACKER) for _ in range(3)]
    assert not any(t.disconnecting for _, t in held)
    protocol, transport = connect(factory, ATTACKER)
    assert isinstance(protocol, Refusal) and transport.disconnecting
    answer = parse_response(transport.value())
    assert answer.status == 503 and answer.header("retry-after") == "10"
    assert answer.header("connection") == "close" and answer.json()["error"] == "unavailable"
    # another address, and the attacker once one of its connections has gone, are served
    _, other = connect(factory, "198.51.100.8")
    assert not other.disconnecting and other.value() == b""
    held[0][0].connectionLost(Failure(ConnectionDone()))
    again, transport = connect(factory, ATTACKER)
    assert not isinstance(again, Refusal) and not transport.disconnecting
    # a served connection still answers requests normally
    again.dataReceived(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert parse_response(transport.value()).status in (200, 503)


def test_trusted_networks_are_never_refused(make_tau) -> None:
    tau = make_tau(listen=LISTEN, limits={"http_connections_per_ip": "2"})  # default: loopback trusted
    factory = tau.host.listeners["http"].factory
    conns = [connect(factory, "127.0.0.1") for _ in range(50)] + [connect(factory, "127.9.9.9") for _ in range(5)]
    assert not any(isinstance(p, Refusal) or t.disconnecting for p, t in conns)
    assert [isinstance(connect(factory, ATTACKER)[0], Refusal) for _ in range(3)] == [False, False, True]


# -- slowloris ---------------------------------------------------------------------------------

def test_request_headers_trickling_in_are_cut_after_line_timeout(tau) -> None:
    clock = tau.clock
    limit = tau.registry.config.limits.line_timeout
    channel, transport = connect(tau.site, ATTACKER)
    head = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-A: " + b"a" * 200
    sent = 0
    for byte in head:  # one byte every 2 s: Twisted's idle timeout (reset by each byte) never fires
        channel.dataReceived(bytes([byte]))
        sent += 1
        clock.advance(2)
        if transport.disconnecting:
            break
    assert transport.disconnecting, "a trickled header block must be cut"
    assert limit <= sent * 2 <= limit + 2
    answer = parse_response(transport.value())
    assert answer.status == 408 and answer.header("connection") == "close"
    assert json.loads(answer.body)["error"] == "request_timeout"


def test_headers_sent_in_time_are_answered_and_the_next_request_gets_a_fresh_bound(tau) -> None:
    clock = tau.clock
    channel, transport = connect(tau.site, "198.51.100.8")
    for piece in (b"GET /api/health HTTP/1.1\r\n", b"Host: localhost\r\n", b"\r\n"):
        channel.dataReceived(piece)
        clock.advance(20)                     # 40 s for the whole block: inside the 60 s bound
    assert parse_response(transport.value()).status in (200, 503) and not transport.disconnecting
    transport.clear()
    clock.advance(50)                         # idle between requests is Twisted's timeOut's business
    channel.dataReceived(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting and parse_response(transport.value()).status == 408


def test_a_slow_request_body_is_not_a_slow_header(tau) -> None:
    """The bound is for the request line and headers; a body is bounded by the idle timeout."""
    clock = tau.clock
    channel, transport = connect(tau.site, "198.51.100.8")
    body = json.dumps({"x": "y" * 20}).encode()
    channel.dataReceived(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
    for i in range(0, len(body), 4):
        channel.dataReceived(body[i:i + 4])
        clock.advance(10)
    answer = parse_response(transport.value())
    assert answer.status == 200 and answer.json() == {"got": {"x": "y" * 20}}


def test_a_handler_that_hashes_while_the_queue_is_full_answers_503(tau) -> None:
    """Any route that hashes a password (admin user creation, password change) is told to retry,
    not a 500, when the hashing gate is full."""
    from twisted.internet import defer

    from tau.auth.hashgate import HashGate
    from tau.auth.passwords import hash_password
    from tau.http.router import json_response

    tau.registry.provide("hash_gate", HashGate(lambda fn, *a: defer.Deferred(), 1, 0))

    async def hashing(request):
        await tau.registry.run_password_hash(hash_password, "a new password")
        return json_response({"ok": True})

    tau.host.http.route("POST", "/test/hash", hashing, auth="none")
    first = connect(tau.site, "198.51.100.8")[0]
    first.dataReceived(b"POST /test/hash HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")   # holds the hasher
    answer = tau.request("POST", "/test/hash")
    assert answer.status == 503 and answer.header("retry-after") and answer.json()["error"] == "unavailable"
