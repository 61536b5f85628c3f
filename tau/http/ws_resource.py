"""The autobahn half of ``websocket.py``, imported on the first WebSocket request: the serving
protocol class (a :class:`JsonSocket` subclass over ``WebSocketServerProtocol``), its factory
and the resource that answers non-handshake requests itself."""

from __future__ import annotations

import base64
import functools
from typing import TYPE_CHECKING, Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.web.server import NOT_DONE_YET

from tau.http.errors import HttpError

if TYPE_CHECKING:
    from tau.http.websocket import JsonSocket


_CSP = {"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


def _tokens(request: Any, name: bytes) -> set[str]:
    values = request.requestHeaders.getRawHeaders(name) or []
    return {t.strip().lower() for v in values for t in v.decode("latin-1").split(",") if t.strip()}


def handshake_problem(request: Any) -> HttpError | None:
    """Why ``request`` is not a WebSocket opening handshake (RFC 6455 section 4.2.1), or None.

    Autobahn answers anything else with its own HTML status page (naming its version, without
    the headers every tau answer has); tau answers with the contract's JSON error instead.
    """
    if request.method != b"GET":
        return HttpError(405, "method_not_allowed", "a WebSocket opens with GET", headers={"Allow": "GET", **_CSP})
    upgrade = {"Upgrade": "websocket", "Sec-WebSocket-Version": "13", **_CSP}
    if "websocket" not in _tokens(request, b"upgrade") or "upgrade" not in _tokens(request, b"connection"):
        return HttpError(426, "upgrade_required", "this endpoint speaks WebSocket only", headers=upgrade)
    if (request.getHeader(b"sec-websocket-version") or b"").strip() != b"13":
        return HttpError(426, "upgrade_required", "WebSocket version 13 is required", headers=upgrade)
    try:
        key = base64.b64decode(request.getHeader(b"sec-websocket-key") or b"", validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return HttpError(400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64", headers=_CSP)
    return None


@functools.cache
def protocol_class(protocol: type[JsonSocket]) -> type[Any]:
    """``protocol`` with autobahn's server protocol beneath it (same name, for logs)."""
    return type(protocol.__name__, (protocol, WebSocketServerProtocol), {"__module__": protocol.__module__})


class SocketResource(WebSocketResource):  # type: ignore[misc]
    """Hands WebSocket handshakes to Autobahn; answers everything else itself (JSON, usual headers)."""

    def render(self, request: Any) -> Any:
        if getattr(request, "channel", None) is None or getattr(request, "_disconnected", False):
            return NOT_DONE_YET  # the client has gone: nothing to take over
        problem = handshake_problem(request)
        if problem is None:
            return super().render(request)
        from tau.http.router import send_error

        send_error(request, problem)
        return NOT_DONE_YET


def build(attributes: dict[str, Any], protocol: type[JsonSocket], max_frame: float, ping_interval: float,
          ping_timeout: float) -> WebSocketResource:
    """The resource serving ``protocol``; ``attributes`` (``registry`` and what the service
    adds) are set on the factory, where the sockets find them."""
    factory = WebSocketServerFactory(server=None)  # no "Server: AutobahnPython/<version>"
    factory.protocol = protocol_class(protocol)
    for name, value in attributes.items():
        setattr(factory, name, value)
    factory.setProtocolOptions(maxFramePayloadSize=int(max_frame), maxMessagePayloadSize=int(max_frame),
                               autoPingInterval=ping_interval, autoPingTimeout=ping_timeout,
                               openHandshakeTimeout=10, closeHandshakeTimeout=5,
                               # a failed connection still says why (1009, 1007...) before it goes
                               failByDrop=False,
                               # never Autobahn's HTML status page (SocketResource answers first anyway)
                               webStatus=False)
    return SocketResource(factory)
