"""Unparseable HTTP framing gets the contract's JSON error with a request id, never a bare 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.support.http import parse_response

MALFORMED = {
    "bad request line": b"GARBAGE\r\n\r\n",
    "bad header": b"GET /api/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "bad content-length": b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
    "bad chunk size": b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_framing_gets_a_json_400(make_tau: Any, case: str) -> None:
    tau = make_tau()
    site = tau.site
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(transport)
    channel.dataReceived(MALFORMED[case])
    response = parse_response(transport.value())
    assert response.status == 400
    body = json.loads(response.body)
    assert body["error"] == "bad_request" and body["request_id"] == response.header("x-request-id")
    assert transport.disconnecting
