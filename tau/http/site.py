"""The twisted.web Site every HTTP service mounts on, and its Request.

Every response carries ``X-Request-ID``; bodies over the limit for their path are refused with
413 before they are read (declared length) or as soon as they pass it (chunked); unhandled
errors become JSON 500s without a traceback — or 503 with ``Retry-After`` when the database or
blob store is unreachable (``tau.storage.faults``); every request is logged as one JSON access record.
A streamed body whose sink asks for it is only stored once the request is authenticated — with
the auth mode and scope of the route that will serve it — and admitted (quota), which happens as
soon as the headers are in: a refused upload is answered 401/403/404/405/507 at once and nothing
of its body is written anywhere (``tau.http.gate``). Limits, sinks and that check all match the
percent-decoded path the router routes (``tau.http.router.route_path``).
"""

from __future__ import annotations

import re
import secrets
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server

from tau.http.errors import HttpError, error_body
from tau.http.gate import Admission, BodyCap, EarlyAuth, HeldBody
from tau.http.router import route_path
from tau.net.slow import SlowSender
from tau.storage.faults import RETRY_AFTER, is_unavailable

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger(namespace="tau.http.access")
errlog = Logger(namespace="tau.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: declared bodies up to this size skip body admissions (a quota query per small PUT cost ~15 %
#: of the small-PUT rate); at most this much of a refused body reaches the disk, then it is removed
ADMIT_ABOVE = 1024 * 1024
SinkFactory = Callable[[Any, "int | None"], Any]
class TauRequest(server.Request):
    request_id: str
    user: Any = None
    route: str = "-"
    #: set by a body admission (quota); the streamed sink enforces it (tau.dav.put.UploadBody)
    body_cap: BodyCap | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_id = secrets.token_hex(8)
        self.started = time.monotonic()
        self._rejected = False
        self._received = 0
        self._limit: int | None = None
        self._complete = False  # the whole body is in (requestReceived ran)
        #: set when the body sink asked for authentication at header time (the router reuses it)
        self.early_auth: EarlyAuth | None = None

    # -- body limits ---------------------------------------------------------------------------
    def gotLength(self, length: int | None) -> None:
        raw = getattr(self.channel, "_path", b"/") or b"/"
        method = getattr(self.channel, "_command", b"GET") or b"GET"
        site = self.channel.site
        try:  # limits and sinks match the path the router will route (percent-decoded)
            path: str | None = route_path(raw)
        except ValueError:
            path = None  # the router answers 400; the default limit bounds the body meanwhile
        self._limit = site.body_limit(path) if path is not None else site.default_body_limit
        if length is not None and self._limit is not None and length > self._limit:
            self._reject_too_large()
        sink = None if self._rejected or path is None else site.body_sink_for(method, path)
        if sink is None:
            super().gotLength(length if not self._rejected else 0)
        elif sink[1] is None:
            # the body goes straight to its destination (blob store) as it arrives
            self.content = sink[0](self, length)
        else:
            self._gate(site, sink[0], method.decode("latin-1").upper(), path or "/", length)

    # -- authentication before the body ---------------------------------------------------------
    def _gate(self, site: TauSite, factory: SinkFactory, method: str, path: str, length: int | None) -> None:
        """Authenticate now, with the auth mode and scope of the route that will serve the request
        (``Router.requirement``), then admit the body (``TauSite.add_body_admission``: quota);
        create the sink only for a request that passed both.

        ``Expect: 100-continue`` is answered here, after the checks, so a refused client never
        sends its body; a body already on its way is held (bounded) and then dropped or stored.
        """
        from tau.http.auth import authenticate_request

        expect = (self.requestHeaders.getRawHeaders(b"expect") or [b""])[0].lower() == b"100-continue"
        self.requestHeaders.removeHeader(b"expect")  # Twisted would send 100 before we know
        held = HeldBody(self)
        self.content = held
        try:
            mode, scope, cookie = site.requirement(method, path)
        except HttpError as exc:  # no route takes this body (404/405): refused before it is read
            held.drop()
            self._refuse(exc)
            return
        if mode == "none":
            self.content = factory(self, length)
            return
        self.early_auth = early = EarlyAuth(mode)
        raw = getattr(self.channel, "_path", b"") or b""
        self.args = parse_qs(raw.split(b"?", 1)[1], 1) if b"?" in raw else {}
        admit = site.body_admission(method, path)

        async def check() -> Any:
            if cookie:  # the CSRF check of a cookie-authenticated upload reads the method
                self.method = method.encode("latin-1")
            user = await authenticate_request(site.registry, self, allow_basic=(mode == "any"),
                                              allow_cookie=cookie, scope=scope)
            # e.g. a declared length over the quota: refused at the headers. A small declared body
            # skips the admission's query: the exact check where it is stored still refuses it
            if admit is not None and (length is None or length > ADMIT_ABOVE):
                self.body_cap = await admit(self, user, length)
            return user

        def accepted(user: Any) -> None:
            if not (self._rejected or self._disconnected or self.finished):
                try:
                    target = factory(self, length)
                except Exception:
                    refused(Failure())
                    return
                self.content = target
                held.release(target)
                if expect and not self._complete and getattr(self.channel, "_version", b"") == b"HTTP/1.1":
                    self.transport_call("write", b"HTTP/1.1 100 Continue\r\n\r\n")
            early.settle(user)

        def refused(failure: Any) -> None:
            held.drop()
            if not (self._complete or self._rejected or self._disconnected):
                # the body is still coming: answer now and close instead of reading it
                exc = failure.value
                if not isinstance(exc, HttpError) and is_unavailable(exc):
                    errlog.warn("authentication: storage unavailable: {exc}", exc=exc, request_id=self.request_id)
                    exc = unavailable_error()
                elif not isinstance(exc, HttpError):
                    errlog.failure("authentication failed", failure, request_id=self.request_id)
                    exc = HttpError(500, "internal_error", "internal server error")
                self._refuse(exc)
            early.settle(error=failure.value)

        d = defer.ensureDeferred(check())
        d.addCallbacks(accepted, refused)
        d.addErrback(lambda f: errlog.failure("early authentication of {path} failed", f, path=raw[:300]))

    def _refuse(self, exc: HttpError) -> None:
        body = exc.body if exc.body is not None else error_body(exc.code, exc.message, self.request_id, exc.extra)
        self._answer_and_close(exc.status, body, exc.headers or {}, exc.content_type)

    def refuse_body(self, exc: HttpError) -> None:
        """A sink stopped the body (a streamed upload passed the quota): answer ``exc`` now and
        close; nothing more of the body is read. A no-op once the whole request is in (the
        resource answers then)."""
        if not (self._complete or self._rejected or self._disconnected or self.finished):
            self._refuse(exc)

    def transport_call(self, action: str, *args: Any) -> None:
        transport = getattr(self.channel, "transport", None)
        if transport is not None and hasattr(transport, action):
            try:
                getattr(transport, action)(*args)
            except Exception:  # a closed TLS transport may refuse; nothing to do then
                pass

    def handleContentChunk(self, data: bytes) -> None:
        if self._rejected:
            return
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            self._reject_too_large()
            return
        super().handleContentChunk(data)

    def _reject_too_large(self) -> None:
        body = error_body("payload_too_large", f"request body over {self._limit} bytes", self.request_id)
        self._answer_and_close(413, body)

    def _answer_and_close(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                          content_type: str = "application/json") -> None:
        """Answer before the body is read, then close: the rest of the body is never looked at."""
        self._rejected = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after our answer
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode("latin-1")
        reason = http.RESPONSES.get(status, b"Error")
        head = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n" % (status, reason, content_type.encode("latin-1"))
                + b"X-Request-ID: " + self.request_id.encode() + b"\r\nConnection: close\r\n" + extra
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.channel.transport.write(head + body)
        self.channel.transport.loseConnection()
        log.info("{method} {path} {status}", method=self.channel._command.decode("latin-1", "replace"),
                 path=self.channel._path.decode("latin-1", "replace")[:300], status=status,
                 request_id=self.request_id, bytes_in=self._received)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._rejected:
            return
        self._complete = True
        incoming = self.requestHeaders.getRawHeaders(b"x-request-id")
        if incoming:
            candidate = incoming[0].decode("latin-1")
            if _SAFE_ID.match(candidate):
                self.request_id = candidate
        self.responseHeaders.setRawHeaders(b"x-request-id", [self.request_id.encode()])
        self.responseHeaders.setRawHeaders(b"x-content-type-options", [b"nosniff"])  # every answer
        site = self.channel.site
        site.in_flight.add(self)
        self.notifyFinish().addBoth(lambda _: site.in_flight.discard(self))
        super().requestReceived(command, path, version)

    # -- failures ------------------------------------------------------------------------------
    def processingFailed(self, reason: Any) -> None:
        """The one place unhandled errors become answers: 503 for an outage, 500 for a bug."""
        down = is_unavailable(reason.value)
        if down:
            errlog.warn("{method} {path}: storage unavailable: {exc}", method=self.method, path=self.path,
                        exc=repr(reason.value)[:300], request_id=self.request_id)
        else:
            errlog.failure("unhandled error in {method} {path}", reason, method=self.method, path=self.path,
                           request_id=self.request_id)
        if self.finished or self._disconnected:
            return
        if self.startedWriting:
            self.channel.transport.loseConnection()
            return
        exc = unavailable_error() if down else HttpError(500, "internal_error", "internal server error")
        self.setResponseCode(exc.status)
        for name, value in exc.headers.items():
            self.responseHeaders.setRawHeaders(name.encode(), [value.encode()])
        body = error_body(exc.code, exc.message, self.request_id)
        self.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
        self.responseHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        self.write(body)
        self.finish()

    @property
    def client_ip(self) -> str:
        peer = self.getClientAddress()
        return getattr(peer, "host", "") or "unknown"


def _plain_answer(status: int, code: str, message: str, headers: bytes = b"") -> bytes:
    """A complete ``Connection: close`` JSON error response, written before any request is parsed."""
    request_id = secrets.token_hex(8)
    body = error_body(code, message, request_id)
    reason = http.RESPONSES.get(status, b"Error")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nX-Request-ID: %s\r\n%sConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % (status, reason, request_id.encode(), headers, len(body))) + body


class TauChannel(http.HTTPChannel):
    """HTTPChannel whose answer to unparseable framing is the contract's JSON error, not a bare 400,
    and whose request line and headers must be in within ``[limits] line_timeout`` (Twisted's idle
    timeout is reset by every byte, so a slowloris client trickling headers would never hit it)."""

    _slow: SlowSender | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.line_mode and not self._handlingRequest:
            if self._slow is None:
                site = self.site
                self._slow = SlowSender(site.registry.reactor, self._headers_too_slow)
                self._header_timeout = site.registry.config.limits.line_timeout
            self._slow.line(self._header_timeout)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        if self._slow is not None:
            self._slow.line_done()
        super().allHeadersReceived()

    def connectionLost(self, reason: Any) -> None:
        if self._slow is not None:
            self._slow.stop()
        super().connectionLost(reason)

    def _headers_too_slow(self, _what: str) -> None:
        errlog.info("closing {peer}: request headers not received in time", peer=str(self.transport.getPeer()))
        self.transport.write(_plain_answer(408, "request_timeout", "request headers not received in time"))
        self.loseConnection()

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted calls this for a bad request line, header, Content-Length or chunk framing
        request_id = secrets.token_hex(8)
        body = error_body("bad_request", "malformed HTTP request", request_id)
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             b"X-Request-ID: " + request_id.encode() + b"\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.loseConnection()


def unavailable_error() -> HttpError:
    """The answer to a request that met a storage outage (RFC 9110 §15.6.4)."""
    return HttpError(503, "unavailable", "storage is temporarily unavailable; retry later",
                     headers={"Retry-After": str(RETRY_AFTER)})


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, at a segment boundary (as ``Router.mount`` matches)."""
    base = prefix.rstrip("/")
    return path == base or path.startswith(base + "/") or (not base and path.startswith("/"))


def _tau_channel_factory(factory: Any) -> Any:
    return http._GenericHTTPChannelProtocol(TauChannel())


class TauSite(server.Site):
    requestFactory = TauRequest
    displayTracebacks = False
    protocol = _tau_channel_factory

    @property
    def refusal(self) -> bytes:
        """What CappedFactory (tau.app.connlimit) says to a client over the connection caps."""
        return _plain_answer(503, "unavailable", "too many connections from your address", b"Retry-After: 10\r\n")

    def __init__(self, resource: Any, registry: Registry, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self.registry = registry
        self.default_body_limit: int = registry.config.limits.request_body
        #: (decoded path prefix, limit or None for streamed bodies) — longest prefix wins
        self.body_limits: list[tuple[str, int | None]] = []
        self.on_finish: list[Callable[[TauRequest, float], None]] = []
        #: requests received and not yet finished (shutdown waits for them: ``drain``); weak, so a
        #: request whose connection was taken over (WebSocket) and never finishes is not kept
        self.in_flight: weakref.WeakSet[TauRequest] = weakref.WeakSet()
        #: (path prefix, methods, factory(request, length) -> file-like with write(), auth mode or None)
        self.body_sinks: list[tuple[str, frozenset[bytes], SinkFactory, str | None]] = []
        #: (path prefix, methods, admit): checks of a gated body before its sink is created
        self.body_admissions: list[tuple[str, frozenset[str], Admission]] = []

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

    def requirement(self, method: str, path: str) -> tuple[str, str | None, bool]:
        """(auth mode, scope, session cookie accepted) of the route or mount serving ``method path`` (the router knows,
        ``Router.requirement``); raises its 404/405 ``HttpError`` when none does."""
        return self.resource.requirement(method, path)  # type: ignore[no-any-return]

    def set_body_limit(self, prefix: str, limit: int | None) -> None:
        """Bodies under ``prefix`` (a decoded path, matched at a segment boundary) up to ``limit``."""
        self.body_limits.append((prefix, limit))
        self.body_limits.sort(key=lambda p: -len(p[0]))

    def add_body_admission(self, prefix: str, methods: set[str], admit: Admission) -> None:
        """Before a gated body (``add_body_sink(auth=...)``) is stored, ``admit(request, user,
        length)`` may refuse it (raise ``HttpError``: a declared length over the quota) or return
        a ``BodyCap`` that the sink enforces on the bytes as they stream."""
        self.body_admissions.append((prefix, frozenset(methods), admit))
        self.body_admissions.sort(key=lambda p: -len(p[0]))

    def body_admission(self, method: str, path: str) -> Admission | None:
        for prefix, methods, admit in self.body_admissions:
            if method in methods and _under(path, prefix):
                return admit
        return None

    def add_body_sink(self, prefix: str, methods: set[str], factory: SinkFactory, auth: str | None = None) -> None:
        """Stream request bodies of ``methods`` under ``prefix`` into ``factory(request, length)``.

        The object returned replaces ``request.content``: twisted.web calls its ``write(data)``
        for every chunk received; it may pause the transport (back-pressure) while it drains.
        With ``auth`` (the route's mode: "bearer" or "any") the request is authenticated when its
        headers arrive and ``factory`` is only called for an authenticated request (a refused one
        is answered 401 at once); the router then reuses that result. Without it authentication
        happens later, in the resource: the sink must not commit anything until the resource
        accepts the request.
        """
        self.body_sinks.append((prefix, frozenset(m.encode() for m in methods), factory, auth))
        self.body_sinks.sort(key=lambda p: -len(p[0]))

    def body_sink_for(self, method: bytes, path: str) -> tuple[SinkFactory, str | None] | None:
        """The sink for ``method`` on the decoded ``path`` (``tau.http.router.route_path``)."""
        for prefix, methods, factory, auth in self.body_sinks:
            if method in methods and _under(path, prefix):
                return factory, auth
        return None

    def body_sink(self, method: bytes, path: str) -> SinkFactory | None:
        found = self.body_sink_for(method, path)
        return None if found is None else found[0]

    def body_limit(self, path: str) -> int | None:
        for prefix, limit in self.body_limits:
            if _under(path, prefix):
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
