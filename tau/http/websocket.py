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
- a token bucket per connection: frames over the rate get an error frame and are not processed.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource

from tau.http.auth import authenticate_request
from tau.http.errors import HttpError

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400


class FrameError(Exception):
    """Raised by a frame handler: answered with an error frame, the socket stays."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


class _Credentials:
    """The bits of an upgrade request that ``authenticate_request`` reads."""

    def __init__(self, request: Any) -> None:
        self._headers = request.headers
        tokens = request.params.get("access_token") or []
        self.args = {b"access_token": [tokens[0].encode("utf-8", "replace")]} if tokens else {}
        self.client_ip = getattr(request, "peer", "") or ""

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802 - twisted.web's spelling
        value = self._headers.get(name.decode().lower())
        return value.encode("latin-1", "replace") if value else None


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


class JsonSocket:
    """Subclasses define ``frame_<type>(frame)`` handlers (sync or async) and ``opened``/``closed``.

    A mixin: the class that serves connections puts autobahn's ``WebSocketServerProtocol``
    under it (``ws_resource.protocol_class``) when the first handshake arrives, so the daemon
    does not load autobahn (about 6 MiB) until a socket is used."""

    # from WebSocketServerProtocol, joined in by ws_resource.protocol_class
    factory: Any
    sendClose: Any  # noqa: N815
    sendMessage: Any  # noqa: N815

    registry: Any = None  # set on the factory by make_resource
    user: Any = None
    #: the scope a token needs to open this socket (tau.auth.scopes); every subclass names one
    scope: str | None = None
    rate_capacity: float = 200.0
    rate_per_second: float = 100.0

    # -- handshake ------------------------------------------------------------------------------
    def onConnect(self, request: Any) -> Any:  # noqa: N802
        self.registry = self.factory.registry
        self._close_after_open: tuple[int, str] | None = None
        self._bucket = TokenBucket(self.registry.clock, self.rate_capacity, self.rate_per_second)
        return defer.ensureDeferred(self._authenticate(request))

    async def _authenticate(self, request: Any) -> None:
        try:
            credentials = _Credentials(request)
            self.user = await authenticate_request(self.registry, credentials, scope=self.scope)
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
        session = getattr(self, "_session", None)
        if session:
            self._unwatch = self.registry.revocations.watch(session, self._session_revoked)
        defer.maybeDeferred(self.opened).addErrback(self._crashed, "open")

    def _session_revoked(self) -> None:
        if getattr(self, "_open", False):
            self.sendClose(CLOSE_UNAUTHORIZED, "session_revoked")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N802
        unwatch = getattr(self, "_unwatch", None)
        if unwatch is not None:
            self._unwatch = None
            unwatch()
        if getattr(self, "_open", False):
            self._open = False
            defer.maybeDeferred(self.closed).addErrback(self._crashed, "close")

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
        d = defer.maybeDeferred(handler, frame)
        d.addErrback(self._frame_failed, frame["type"], ref)

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
        if getattr(self, "_open", False):
            self.sendMessage(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    def send_error(self, code: str, message: str, ref: Any = None, **extra: Any) -> None:
        out: dict[str, Any] = {"type": "error", "error": code, "message": message}
        if ref is not None:
            out["ref"] = ref
        out.update(extra)
        self.send_json(out)


def make_resource(registry: Registry, protocol: type[JsonSocket], max_frame: int = 1024 * 1024,
                  ping_interval: float = 30.0, ping_timeout: float = 10.0) -> Resource:
    """A twisted.web resource for ``host.http.mount(path, resource)``. Autobahn is loaded, and
    the real resource built (``ws_resource.build``), on the first request to it."""
    from tau.auth import scopes

    if protocol.scope is None or not scopes.valid_requirement(protocol.scope):
        raise ValueError(f"{protocol.__name__} must name the scope its tokens need (tau.auth.scopes)")
    return LazySocketResource(registry, protocol, {"max_frame": max_frame, "ping_interval": ping_interval,
                                                   "ping_timeout": ping_timeout})


class LazySocketResource(Resource):
    """Builds the autobahn resource on first use and hands every request to it."""

    isLeaf = True  # noqa: N815

    def __init__(self, registry: Registry, protocol: type[JsonSocket], options: dict[str, float]) -> None:
        super().__init__()
        self.protocol, self.options = protocol, options
        #: what the sockets read as ``self.factory.<name>`` (services add theirs, e.g. ``hub``);
        #: copied onto autobahn's factory when it is built
        self._factory = SimpleNamespace(registry=registry)
        self.real: Any = None

    def resource(self) -> Any:
        """Autobahn's resource, built the first time it is needed."""
        if self.real is None:
            from tau.http import ws_resource

            self.real = ws_resource.build(vars(self._factory), self.protocol, **self.options)
        return self.real

    def render(self, request: Any) -> Any:
        return self.resource().render(request)
