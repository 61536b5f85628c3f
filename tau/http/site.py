"""The twisted.web Site every HTTP service mounts on, and its Request.

Every response carries ``X-Request-ID``; bodies over the limit for their path are refused with
413 before they are read (declared length) or as soon as they pass it (chunked); unhandled
errors become JSON 500s without a traceback; every request is logged as one JSON access record.
"""

from __future__ import annotations

import re
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.logger import Logger
from twisted.web import http, server

from tau.http.errors import error_body

log = Logger(namespace="tau.http.access")
errlog = Logger(namespace="tau.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TauRequest(server.Request):
    request_id: str
    user: Any = None
    route: str = "-"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_id = secrets.token_hex(8)
        self.started = time.monotonic()
        self._rejected = False
        self._received = 0
        self._limit: int | None = None

    # -- body limits ---------------------------------------------------------------------------
    def gotLength(self, length: int | None) -> None:
        path = getattr(self.channel, "_path", b"/") or b"/"
        method = getattr(self.channel, "_command", b"GET") or b"GET"
        site = self.channel.site
        self._limit = site.body_limit(path)
        if length is not None and self._limit is not None and length > self._limit:
            self._reject_too_large()
        sink = None if self._rejected else site.body_sink(method, path)
        if sink is not None:
            # the body goes straight to its destination (blob store) as it arrives
            self.content = sink(self, length)
        else:
            super().gotLength(length if not self._rejected else 0)

    def handleContentChunk(self, data: bytes) -> None:
        if self._rejected:
            return
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            self._reject_too_large()
            return
        super().handleContentChunk(data)

    def _reject_too_large(self) -> None:
        self._rejected = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after our answer
        body = error_body("payload_too_large", f"request body over {self._limit} bytes", self.request_id)
        head = (b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                b"X-Request-ID: " + self.request_id.encode() + b"\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.channel.transport.write(head + body)
        self.channel.transport.loseConnection()
        log.info("{method} {path} 413", method=self.channel._command.decode("latin-1", "replace"),
                 path=self.channel._path.decode("latin-1", "replace")[:300], status=413,
                 request_id=self.request_id, bytes_in=self._received)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._rejected:
            return
        incoming = self.requestHeaders.getRawHeaders(b"x-request-id")
        if incoming:
            candidate = incoming[0].decode("latin-1")
            if _SAFE_ID.match(candidate):
                self.request_id = candidate
        self.responseHeaders.setRawHeaders(b"x-request-id", [self.request_id.encode()])
        site = self.channel.site
        site.in_flight.add(self)
        self.notifyFinish().addBoth(lambda _: site.in_flight.discard(self))
        super().requestReceived(command, path, version)

    # -- failures ------------------------------------------------------------------------------
    def processingFailed(self, reason: Any) -> None:
        errlog.failure("unhandled error in {method} {path}", reason, method=self.method, path=self.path,
                       request_id=self.request_id)
        if self.finished or self._disconnected:
            return
        if self.startedWriting:
            self.channel.transport.loseConnection()
            return
        self.setResponseCode(500)
        body = error_body("internal_error", "internal server error", self.request_id)
        self.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
        self.responseHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        self.write(body)
        self.finish()

    @property
    def client_ip(self) -> str:
        peer = self.getClientAddress()
        return getattr(peer, "host", "") or "unknown"


class TauChannel(http.HTTPChannel):
    """HTTPChannel whose answer to unparseable framing is the contract's JSON error, not a bare 400."""

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted calls this for a bad request line, header, Content-Length or chunk framing
        request_id = secrets.token_hex(8)
        body = error_body("bad_request", "malformed HTTP request", request_id)
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             b"X-Request-ID: " + request_id.encode() + b"\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.loseConnection()


def _tau_channel_factory(factory: Any) -> Any:
    return http._GenericHTTPChannelProtocol(TauChannel())


class TauSite(server.Site):
    requestFactory = TauRequest
    displayTracebacks = False
    protocol = _tau_channel_factory

    def __init__(self, resource: Any, registry: Any, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.registry = registry
        self.default_body_limit: int = registry.config.get("limits", "request_body")
        #: (path prefix, limit or None for streamed bodies) — longest prefix wins
        self.body_limits: list[tuple[bytes, int | None]] = []
        self.on_finish: list[Callable[[TauRequest, float], None]] = []
        #: requests received and not yet finished (shutdown waits for them: ``drain``); weak, so a
        #: request whose connection was taken over (WebSocket) and never finishes is not kept
        self.in_flight: weakref.WeakSet[TauRequest] = weakref.WeakSet()
        #: (path prefix, methods, factory(request, length) -> file-like with write()) for streamed bodies
        self.body_sinks: list[tuple[bytes, frozenset[bytes], Callable[[Any, int | None], Any]]] = []

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for requests being answered; returns how many were cut short.

        Requests that switched protocols (WebSocket) are not waited for."""
        clock = self.registry.reactor
        deadline = clock.seconds() + timeout
        while self._answering() and clock.seconds() < deadline:
            await task.deferLater(clock, 0.05, lambda: None)
        left = len(self._answering())
        if left:
            errlog.warn("shutdown: {n} HTTP request(s) still in flight after {t:.0f} s", n=left, t=timeout)
        return left

    def _answering(self) -> list[TauRequest]:
        return [r for r in self.in_flight if r.code != 101 and getattr(r.channel, "transport", None) is not None]

    def buildProtocol(self, addr: Any) -> Any:
        """The channel, counted in ``tau_connections{protocol="http"}`` while it is open."""
        channel = super().buildProtocol(addr)
        gauge = self.registry.metrics.connections.labels("http")
        made, lost = channel.connectionMade, channel.connectionLost

        def connection_made() -> None:
            gauge.inc()
            made()

        def connection_lost(reason: Any) -> None:
            gauge.dec()
            lost(reason)

        channel.connectionMade, channel.connectionLost = connection_made, connection_lost
        return channel

    def set_body_limit(self, prefix: str, limit: int | None) -> None:
        self.body_limits.append((prefix.encode(), limit))
        self.body_limits.sort(key=lambda p: -len(p[0]))

    def add_body_sink(self, prefix: str, methods: set[str], factory: Callable[[Any, int | None], Any]) -> None:
        """Stream request bodies of ``methods`` under ``prefix`` into ``factory(request, length)``.

        The object returned replaces ``request.content``: twisted.web calls its ``write(data)``
        for every chunk received; it may pause the transport (back-pressure) while it drains.
        Authentication happens later, in the resource: a sink must not commit anything until
        the resource accepts the request.
        """
        self.body_sinks.append((prefix.encode(), frozenset(m.encode() for m in methods), factory))
        self.body_sinks.sort(key=lambda p: -len(p[0]))

    def body_sink(self, method: bytes, path: bytes) -> Callable[[Any, int | None], Any] | None:
        for prefix, methods, factory in self.body_sinks:
            if method in methods and path.startswith(prefix):
                return factory
        return None

    def body_limit(self, path: bytes) -> int | None:
        for prefix, limit in self.body_limits:
            if path.startswith(prefix):
                return limit
        return self.default_body_limit

    def log(self, request: Any) -> None:
        elapsed = time.monotonic() - getattr(request, "started", time.monotonic())
        user = getattr(request, "user", None)
        log.info("{method} {path} {status}", method=request.method.decode("latin-1", "replace"),
                 path=request.path.decode("latin-1", "replace")[:300], status=request.code,
                 bytes_out=request.sentLength, ms=round(elapsed * 1000, 2), ip=request.client_ip,
                 user=getattr(user, "address", None), request_id=getattr(request, "request_id", None),
                 agent=(request.getHeader(b"user-agent") or b"").decode("latin-1", "replace")[:200])
        for callback in self.on_finish:
            callback(request, elapsed)
