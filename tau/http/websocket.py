"""A JSON-over-WebSocket server layer on autobahn's Twisted integration, reusable by every socket.

It lives on the HTTP floor because a socket opens as an HTTP request and authenticates through the
same code as the REST API; ``/ws/messages`` (tau.messenger) and ``/ws/signal`` (tau.connect) subclass
:class:`JsonSocket`. What it gives (INTERFACE.md, WebSocket):

- authentication by ``Authorization: Bearer`` or ``?access_token=`` through the same code as the
  REST API (token verified, session not revoked, account enabled, password not changed since);
  anything else is accepted at the HTTP level and then closed with code 4401 (RFC 6455 section
  7.4.2 reserves 4000-4999 for applications), so browsers, which cannot read a refused handshake,
  see why; a token without the socket's ``scope`` (tau.auth.scopes) is closed with 4403, and an
  open socket whose session is revoked (tau.auth.revocation) is closed with 4401 "session_revoked";
- frames are JSON objects with a ``type``; malformed or unknown frames get
  ``{"type": "error", "error": ...}`` and the connection stays;
- a frame or message over ``max_frame`` bytes closes with 1009 "message too big" (RFC 6455 7.4.1);
- server pings every ``ping_interval`` seconds and drops peers that miss ``ping_timeout``
  (RFC 6455 5.5.2), plus an application-level ``{"type": "ping"}`` → ``{"type": "pong"}``;
- a token bucket per connection: frames over the rate get an error frame and are not processed;
- frames of one socket are handled one after the other, in the order they arrived (a handler that
  waits on the database holds the next frame back), so state changes cannot overtake each other;
- ``permessage-deflate`` (RFC 7692) is accepted when the client offers it;
- back-pressure (issue 20): the socket is the transport's push producer; while the peer does not
  read, outgoing frames wait in a per-socket queue of at most ``max_queued_bytes``, and a peer
  that lets it overflow is closed with 1013 "try again later";
- a peer that breaks RFC 6455 (an invalid Close included) gets a Close saying why (1002, 1007)
  before the connection ends with a FIN; one that never reads is reset after the close timeout;
- sending on a socket that is closing or gone is a no-op, never an error (abrupt closes).
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any

import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import defer
from twisted.logger import Logger

from tau.http.auth import authenticate_request
from tau.http.errors import HttpError
from tau.http.ws_handshake import SocketResource

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
#: RFC 6455 section 7.4.1 / IANA registry: "Try Again Later" (a consumer too slow to keep up)
CLOSE_TRY_AGAIN = 1013


class FrameError(Exception):
    """Raised by a frame handler: answered with an error frame, the socket stays."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


class _Credentials:
    """The bits of an upgrade request that ``authenticate_request`` reads.

    tau's own pages hold no bearer token (tau.http.cookie_session), so a socket also opens with the
    session cookie, but only when the handshake's ``Origin`` is this very host: browsers send
    cookies with cross-site WebSocket handshakes too, and no CSRF header can be added to one.
    """

    method = b"GET"

    def __init__(self, request: Any) -> None:
        self._headers = request.headers
        tokens = request.params.get("access_token") or []
        self.args = {b"access_token": [tokens[0].encode("utf-8", "replace")]} if tokens else {}
        self.client_ip = getattr(request, "peer", "") or ""
        self._cookies = {}
        for piece in (self._headers.get("cookie") or "").split(";"):
            name, _, value = piece.strip().partition("=")
            self._cookies.setdefault(name, value)

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802 - twisted.web's spelling
        value = self._headers.get(name.decode().lower())
        return value.encode("latin-1", "replace") if value else None

    def getCookie(self, name: bytes) -> bytes | None:  # noqa: N802
        value = self._cookies.get(name.decode("latin-1"))
        return value.encode("latin-1", "replace") if value else None

    def isSecure(self) -> bool:  # noqa: N802 - the cookie's name says which one the browser holds
        return "__Host-tau_session" in self._cookies

    def same_origin(self) -> bool:
        origin, host = self._headers.get("origin") or "", self._headers.get("host") or ""
        return bool(host) and origin.split("://", 1)[-1].rstrip("/") == host


class TokenBucket:
    def __init__(self, clock: Any, capacity: float, rate: float) -> None:
        self._clock, self.capacity, self.rate = clock, capacity, rate
        self._tokens, self._last = capacity, clock.seconds()

    def take(self) -> float:
        """0 when allowed; otherwise seconds until a token is back."""
        now = self._clock.seconds()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


class JsonSocket(WebSocketServerProtocol):
    """Subclasses define ``frame_<type>(frame)`` handlers (sync or async) and ``opened``/``closed``."""

    registry: Any = None  # set on the factory by make_resource
    user: Any = None
    #: the scope a token needs to open this socket (tau.auth.scopes); every subclass names one
    scope: str | None = None
    rate_capacity: float = 200.0
    rate_per_second: float = 100.0
    #: outgoing bytes held for a peer that does not read before it is closed with 1013
    max_queued_bytes: int = 4 * 1024 * 1024
    #: frames received and waiting for the one being handled (the token bucket bounds it too)
    max_inbox: int = 256

    # -- handshake ------------------------------------------------------------------------------
    def onConnect(self, request: Any) -> Any:  # noqa: N802
        self.registry = self.factory.registry
        self._close_after_open: tuple[int, str] | None = None
        self._bucket = TokenBucket(self.registry.clock, self.rate_capacity, self.rate_per_second)
        return defer.ensureDeferred(self._authenticate(request))

    async def _authenticate(self, request: Any) -> None:
        try:
            credentials = _Credentials(request)
            self.user = await authenticate_request(self.registry, credentials, scope=self.scope,
                                                   allow_cookie=credentials.same_origin())
            self._session = getattr(credentials, "token_session", None)
            await self.accept(request)
        except HttpError as exc:
            self.user = None
            code = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_FORBIDDEN}.get(exc.status, CLOSE_BAD_REQUEST)
            self._close_after_open = (code, exc.code)
        except FrameError as exc:
            self._close_after_open = (CLOSE_BAD_REQUEST, exc.code)
        return None

    async def accept(self, request: Any) -> None:
        """Per-socket checks after authentication (query parameters...); raise FrameError to refuse."""

    def onOpen(self) -> None:  # noqa: N802
        if self._close_after_open is not None or self.user is None:
            code, reason = self._close_after_open or (CLOSE_UNAUTHORIZED, "unauthorized")
            self.user = None
            self.sendClose(code, reason)
            return
        self._open = True
        self.registry.metrics.connections.labels("websocket").inc()
        self._start_output()
        session = getattr(self, "_session", None)
        if session:
            self._unwatch = self.registry.revocations.watch(session, self._session_revoked)
        defer.maybeDeferred(self.opened).addErrback(self._crashed, "open")

    def _session_revoked(self) -> None:
        if getattr(self, "_open", False):
            self.sendClose(CLOSE_UNAUTHORIZED, "session_revoked")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N802
        linger = getattr(self, "_linger", None)
        if linger is not None:
            self._linger = None
            linger.cancel()
        unwatch = getattr(self, "_unwatch", None)
        if unwatch is not None:
            self._unwatch = None
            unwatch()
        self._frames().clear()  # frames not handled yet die with the socket
        if hasattr(self, "_outbox"):
            self.stopProducing()
        if getattr(self, "_open", False):
            self._open = False
            self.registry.metrics.connections.labels("websocket").dec()
            defer.maybeDeferred(self.closed).addErrback(self._crashed, "close")

    # -- failing a connection: the Close that says why reaches the peer -------------------------
    def onCloseFrame(self, code: int | None, reasonRaw: bytes | None) -> bool | None:  # noqa: N802,N803
        """The peer's Close. Autobahn resets the TCP connection when it comes after a Close of ours,
        which discards one written in this same turn: the 1002/1007 answering an invalid Close (a
        reserved code, a reason that is not UTF-8, a 1-byte payload) would never reach the peer."""
        self._peer_closing = True
        try:
            return super().onCloseFrame(code, reasonRaw)
        finally:
            self._peer_closing = False

    def dropConnection(self, abort: bool = False) -> None:  # noqa: N802
        if abort and getattr(self, "_peer_closing", False):
            abort = False  # both Close frames are said: flush ours, then FIN (not RST)
        closing = self.state != WebSocketProtocol.STATE_CLOSED
        super().dropConnection(abort)
        if closing and not abort and getattr(self, "_linger", None) is None:
            # a FIN waits for the peer to read what is queued; one that never reads is reset
            self._linger = txaio.call_later(self.closeHandshakeTimeout or 5, self._abort_transport)

    def _abort_transport(self) -> None:
        self._linger = None
        if self.transport is not None and hasattr(self.transport, "abortConnection"):
            self.transport.abortConnection()

    def opened(self) -> Any:
        """The socket is authenticated and open."""

    def closed(self) -> Any:
        """The socket is gone (called once, only if ``opened`` was)."""

    # -- frames ---------------------------------------------------------------------------------
    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802
        if self.user is None:  # frames before authentication
            self.sendClose(CLOSE_UNAUTHORIZED, "unauthorized")
            return
        frame = self._parse(payload, isBinary)
        if frame is None:
            return
        ref = frame.get("ref")
        wait = self._bucket.take()
        if wait:
            self.send_error("rate_limited", "too many frames", ref=ref, retry_after=round(max(wait, 0.001), 3))
            return
        handler = getattr(self, "frame_" + frame["type"].replace(".", "_"), None)
        if handler is None:
            self.send_error("unknown_type", f"unknown frame type {frame['type'][:40]!r}", ref=ref)
            return
        inbox = self._frames()
        if len(inbox) >= self.max_inbox:
            self.send_error("rate_limited", "too many frames waiting", ref=ref, retry_after=1)
            return
        inbox.append((handler, frame))
        if not getattr(self, "_handling", False):
            self._next_frame()

    def _frames(self) -> deque[tuple[Any, dict[str, Any]]]:
        if not hasattr(self, "_inbox"):
            self._inbox = deque()
        return self._inbox

    def _next_frame(self, _: Any = None) -> None:
        """Handle queued frames in order; an asynchronous handler holds the rest until it is done."""
        self._handling = False
        inbox = self._frames()
        while inbox:
            handler, frame = inbox.popleft()
            d = defer.maybeDeferred(handler, frame)
            d.addErrback(self._frame_failed, frame["type"], frame.get("ref"))
            if not d.called:
                self._handling = True
                d.addBoth(self._next_frame)
                return

    def _parse(self, payload: bytes, binary: bool) -> dict[str, Any] | None:
        if binary:
            self.send_error("malformed", "frames are JSON text")
            return None
        try:
            frame = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            self.send_error("malformed", "frame is not valid JSON")
            return None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or not frame["type"]:
            self.send_error("malformed", "a frame is a JSON object with a string type")
            return None
        if "ref" in frame and not (isinstance(frame["ref"], (str, int)) and len(str(frame["ref"])) <= 64):
            frame.pop("ref")
        return frame

    def translate_error(self, exc: BaseException) -> FrameError | None:
        """Map a domain exception to an error frame (subclasses); None means an internal error."""
        return None

    def _frame_failed(self, failure: Any, kind: str, ref: Any) -> None:
        exc = failure.value
        if not isinstance(exc, FrameError):
            exc = self.translate_error(exc) or exc
        if isinstance(exc, FrameError):
            self.send_error(exc.code, exc.message, ref=ref, **exc.extra)
        else:
            log.failure("{kind} frame handler failed", failure, kind=kind[:40])
            self.send_error("internal_error", "the frame could not be processed", ref=ref)

    def _crashed(self, failure: Any, what: str) -> None:
        log.failure("websocket {what} handler failed", failure, what=what)

    def frame_ping(self, frame: dict[str, Any]) -> None:
        self.send_json({"type": "pong", "ref": frame.get("ref")} if "ref" in frame else {"type": "pong"})

    # -- output ---------------------------------------------------------------------------------
    def send_json(self, obj: dict[str, Any]) -> None:
        if not getattr(self, "_open", False) or self.state != WebSocketProtocol.STATE_OPEN:
            return  # closing or gone (an abrupt close races with whatever was about to be sent)
        payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if self._paused or self._outbox:
            self._hold(payload)
            return
        self.sendMessage(payload)

    # -- back-pressure: the socket is its transport's push producer -------------------------------
    def _start_output(self) -> None:
        self._outbox, self._queued, self._paused = deque(), 0, False
        self._drain_waiters: list[defer.Deferred[None]] = []
        try:  # twisted.web's channel was the producer of this transport until the upgrade
            self.transport.unregisterProducer()
            self.registerProducer(self, True)
        except Exception as exc:  # a transport without flow control: frames go out unqueued
            log.debug("websocket without back-pressure: {exc}", exc=exc)

    def _hold(self, payload: bytes) -> None:
        self._outbox.append(payload)
        self._queued += len(payload)
        if self._queued > self.max_queued_bytes:
            log.info("websocket consumer too slow for {user}: {n} bytes queued", user=self._who(), n=self._queued)
            self._outbox.clear()
            self._queued = 0
            self._paused = False
            # autobahn's sendClose takes application codes only; 1013 is a protocol-level code
            self.sendCloseFrame(code=CLOSE_TRY_AGAIN, reasonUtf8=b"consumer too slow", isReply=False)

    @property
    def output_blocked(self) -> bool:
        """The peer is not keeping up: a sender of bulk (a replay) should ``await drained()``."""
        return bool(getattr(self, "_paused", False) or getattr(self, "_outbox", None))

    def drained(self) -> defer.Deferred[None]:
        """Fires once everything queued went to the transport (or the socket is gone)."""
        d: defer.Deferred[None] = defer.Deferred()
        if self.output_blocked and getattr(self, "_open", False):
            self._drain_waiters.append(d)
        else:
            d.callback(None)
        return d

    def _release_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for d in waiters:
            d.callback(None)

    def _who(self) -> str:
        return str(getattr(self.user, "address", "?"))

    def pauseProducing(self) -> None:  # noqa: N802 - IPushProducer
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self._paused = False
        while self._outbox and not self._paused:
            payload = self._outbox.popleft()
            self._queued -= len(payload)
            if self.state == WebSocketProtocol.STATE_OPEN:
                self.sendMessage(payload)
        if not self._paused and not self._outbox:
            self._release_waiters()

    def stopProducing(self) -> None:  # noqa: N802
        self._outbox.clear()
        self._queued = 0
        self._release_waiters()

    def send_error(self, code: str, message: str, ref: Any = None, **extra: Any) -> None:
        out: dict[str, Any] = {"type": "error", "error": code, "message": message}
        if ref is not None:
            out["ref"] = ref
        out.update(extra)
        self.send_json(out)


def make_resource(registry: Registry, protocol: type[JsonSocket], max_frame: int = 1024 * 1024,
                  ping_interval: float = 30.0, ping_timeout: float = 10.0) -> SocketResource:
    """A twisted.web resource for ``host.http.mount(path, resource)``."""
    from tau.auth import scopes

    if protocol.scope is None or not scopes.valid_requirement(protocol.scope):
        raise ValueError(f"{protocol.__name__} must name the scope its tokens need (tau.auth.scopes)")
    factory = WebSocketServerFactory(server=None)  # no "Server: AutobahnPython/<version>"
    factory.protocol = protocol
    factory.registry = registry
    factory.setProtocolOptions(maxFramePayloadSize=max_frame, maxMessagePayloadSize=max_frame,
                               autoPingInterval=ping_interval, autoPingTimeout=ping_timeout,
                               openHandshakeTimeout=10, closeHandshakeTimeout=5,
                               # a failed connection still says why (1009, 1007...) before it goes
                               failByDrop=False,
                               # never Autobahn's HTML status page (SocketResource answers first anyway)
                               webStatus=False,
                               # RFC 7692: compress frames when the client offers it (browsers do)
                               perMessageCompressionAccept=accept_deflate)
    return SocketResource(factory)


#: zlib state is kept per socket (context takeover): small windows keep an idle socket at ~25 KiB
#: instead of ~300 KiB; JSON frames are small, so the ratio barely changes
DEFLATE_WINDOW_BITS, DEFLATE_MEM_LEVEL = 11, 4


def accept_deflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """Accept the first ``permessage-deflate`` offer, with small compression windows both ways."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            bits = min(DEFLATE_WINDOW_BITS, offer.request_max_window_bits or DEFLATE_WINDOW_BITS)
            return PerMessageDeflateOfferAccept(
                offer, request_max_window_bits=DEFLATE_WINDOW_BITS if offer.accept_max_window_bits else 0,
                window_bits=bits, mem_level=DEFLATE_MEM_LEVEL)
    return None
