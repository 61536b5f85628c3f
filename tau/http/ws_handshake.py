"""The HTTP side of a WebSocket: what answers an upgrade request before a socket exists.

Autobahn answers a request that is not an opening handshake with its own HTML status page (naming
its version, without the headers every tau answer has); :class:`SocketResource` answers with the
contract's JSON error instead and hands real handshakes to Autobahn (tau.http.websocket).
"""

from __future__ import annotations

import base64
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.web.server import NOT_DONE_YET

from tau.http.errors import HttpError

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


class SocketResource(WebSocketResource):
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
