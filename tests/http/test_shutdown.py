"""At shutdown the HTTP core lets requests in flight finish (bounded) after the listeners stopped
accepting, so a login or an upload answered at SIGTERM is not cut off."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.support.harness import resolve
from tests.support.http import parse_response


def start_slow_request(tau: Any) -> StringTransport:
    """``GET /test/slow`` on its own connection; the handler waits until ``tau.gate`` fires."""
    channel = tau.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /test/slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return transport


def test_finished_requests_are_not_in_flight(tau: Any) -> None:
    for _ in range(3):
        tau.get("/api/health")
    tau.get("/nope")
    assert len(tau.site.in_flight) == 0
    assert resolve(tau.site.drain(3.0)) == 0


def test_drain_waits_for_a_request_being_answered(tau: Any) -> None:
    transport = start_slow_request(tau)
    assert len(tau.site.in_flight) == 1
    drained = defer.Deferred.fromCoroutine(tau.site.drain(3.0))
    tau.clock.advance(1.0)
    assert not drained.called
    tau.gate.callback(None)
    tau.clock.advance(0.1)
    assert resolve(drained) == 0
    assert parse_response(transport.value()).status == 200


def test_drain_gives_up_after_its_timeout(tau: Any) -> None:
    start_slow_request(tau)
    drained = defer.Deferred.fromCoroutine(tau.site.drain(3.0))
    tau.clock.advance(3.1)
    assert resolve(drained) == 1


def test_a_dropped_connection_is_not_waited_for(tau: Any) -> None:
    from twisted.internet.error import ConnectionLost
    from twisted.python.failure import Failure

    start_slow_request(tau)
    (request,) = tau.site.in_flight
    request.channel.connectionLost(Failure(ConnectionLost()))
    assert len(tau.site.in_flight) == 0


def test_the_http_core_registers_its_drain_with_the_host(tau: Any) -> None:
    assert tau.site.drain in tau.host.drains


def test_a_connection_taken_over_by_a_websocket_is_not_waited_for(tau: Any) -> None:
    start_slow_request(tau)
    (request,) = tau.site.in_flight
    request.setResponseCode(101)  # what autobahn's WebSocketResource does, then it takes the transport
    request.channel.transport = None
    assert resolve(tau.site.drain(3.0)) == 0
