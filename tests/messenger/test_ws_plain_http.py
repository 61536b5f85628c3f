"""Issue 13 item 8 (re-review): a plain HTTP request to a WebSocket endpoint.

``GET /ws/messages`` or ``/ws/signal`` without an upgrade used to return Autobahn's own 200 HTML
status page: no CSP, no nosniff, no X-Request-ID, and the Autobahn version in the page. Now
anything that is not an RFC 6455 opening handshake gets the contract's JSON error (426 with
``Upgrade: websocket``, 405 for other methods, 400 for a bad key) with tau's usual headers, and
the handshake itself names no server version. In-process HTTP bytes, both engines (``registry``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tau.http.service import HttpHost
from tests.support.http import FakeHttpClient, HttpResponse, assert_json_error

PATHS = ("/ws/messages", "/ws/signal")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": KEY}


@pytest.fixture
def client(registry: Any) -> FakeHttpClient:
    from tau.connect import service as connect
    from tau.messenger import service as messenger

    host = HttpHost(registry)
    host.mount("/ws/messages", messenger.build(registry)[2])
    host.mount("/ws/signal", connect.build(registry)[2])
    return FakeHttpClient(host.site)


def _assert_tau_answer(response: HttpResponse, status: int, error: str) -> None:
    """The contract's JSON error with the headers every tau answer has; nothing of Autobahn's page."""
    assert_json_error(response, status, error)
    assert response.header("x-content-type-options") == "nosniff", response.headers
    assert "default-src 'none'" in (response.header("content-security-policy") or ""), response.headers
    assert b"autobahn" not in response.body.lower() and b"<html" not in response.body.lower(), response.body
    assert response.header("server") is None, response.headers  # no TwistedWeb/Autobahn version
    assert not response.header("location"), response.headers


@pytest.mark.parametrize("path", PATHS)
def test_plain_get_is_a_426_json_error_not_autobahns_status_page(client: FakeHttpClient, path: str) -> None:
    for query in ("", "?redirect=https%3A%2F%2Fevil.example%2F&after=0"):  # Autobahn's redirect feature
        r = client.get(path + query)
        _assert_tau_answer(r, 426, "upgrade_required")
        assert (r.header("upgrade") or "").lower() == "websocket", r.headers
        assert r.header("sec-websocket-version") == "13", r.headers
        assert r.header("x-request-id"), r.headers


@pytest.mark.parametrize("path", PATHS)
def test_incomplete_handshakes_get_json_errors(client: FakeHttpClient, path: str) -> None:
    no_connection = {k: v for k, v in HANDSHAKE.items() if k != "Connection"}
    _assert_tau_answer(client.get(path, headers=no_connection), 426, "upgrade_required")
    not_websocket = {**HANDSHAKE, "Upgrade": "h2c"}
    _assert_tau_answer(client.get(path, headers=not_websocket), 426, "upgrade_required")
    old_version = {**HANDSHAKE, "Sec-WebSocket-Version": "8"}
    r = client.get(path, headers=old_version)
    _assert_tau_answer(r, 426, "upgrade_required")
    assert r.header("sec-websocket-version") == "13"  # RFC 6455 section 4.4
    for key in ("", "not base64!", "c2hvcnQ="):
        _assert_tau_answer(client.get(path, headers={**HANDSHAKE, "Sec-WebSocket-Key": key}), 400, "bad_request")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_are_405(client: FakeHttpClient, path: str, method: str) -> None:
    r = client.request(method, path, b"{}" if method in ("POST", "PUT") else b"", headers=HANDSHAKE)
    if method == "HEAD":  # no body to read: status and headers only
        assert r.status == 405 and r.header("allow") == "GET" and r.header("x-request-id"), r.headers
        return
    _assert_tau_answer(r, 405, "method_not_allowed")
    assert r.header("allow") == "GET"


def test_the_socket_factories_name_no_server_and_serve_no_status_page(registry: Any) -> None:
    """The 101 handshake answer is written by Autobahn: its Server header must not name a version.
    (Autobahn's resource is built on the first request; ``resource()`` builds it now.)"""
    from tau.connect import service as connect
    from tau.messenger import service as messenger

    for resource in (messenger.build(registry)[2], connect.build(registry)[2]):
        factory = resource.resource()._factory
        assert not factory.server, factory.server
        assert factory.webStatus is False
