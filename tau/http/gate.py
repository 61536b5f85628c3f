"""What the site does with a streamed upload between its headers and its body (``tau.http.site``).

``EarlyAuth``: the authentication started when the headers arrived (the router reuses it);
``HeldBody``: the bounded piece of body held meanwhile; ``BodyCap``: the room an admission
(``TauSite.add_body_admission``, e.g. the quota) left for the body, enforced by the sink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from tau.http.errors import HttpError
from tau.http.sinks import WriteOnlyBody

#: (request, authenticated user, declared length) -> a cap on the streamed bytes, or None
Admission = Callable[[Any, Any, "int | None"], Awaitable["BodyCap | None"]]
#: body bytes kept in memory while the credentials of a gated upload are checked; the transport
#: is paused beyond this (a slow argon2 check must not turn into an unbounded buffer)
HOLD_LIMIT = 256 * 1024


@dataclass
class BodyCap:
    """At most ``limit`` bytes of an admitted body may be stored (the room left in a quota):
    the sink stops storing beyond it and the request is answered ``error`` at once."""

    limit: int
    error: HttpError


class EarlyAuth:
    """The authentication of a request started when its headers arrived (see ``TauRequest``).

    The router awaits ``wait()`` instead of authenticating the request a second time.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.done = False
        self.user: Any = None
        self.error: BaseException | None = None
        self._waiters: list[defer.Deferred[Any]] = []

    def settle(self, user: Any = None, error: BaseException | None = None) -> None:
        self.done, self.user, self.error = True, user, error
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if error is not None:
                d.errback(error)
            else:
                d.callback(user)

    async def wait(self) -> Any:
        if not self.done:
            d: defer.Deferred[Any] = defer.Deferred()
            self._waiters.append(d)
            return await d
        if self.error is not None:
            raise self.error
        return self.user


class HeldBody(WriteOnlyBody):
    """``request.content`` of a gated upload until it is authenticated: at most about
    ``HOLD_LIMIT`` bytes are kept (the transport is paused beyond), then handed to the real sink."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.pieces: list[bytes] = []
        self.held = 0
        self.paused = False
        self.dropped = False
        self.target: Any = None

    def write(self, data: bytes) -> None:
        if self.target is not None:
            self.target.write(data)
            return
        if self.dropped:
            return
        self.pieces.append(data)
        self.held += len(data)
        if self.held >= HOLD_LIMIT and not self.paused:
            self.paused = True
            self.request.transport_call("pauseProducing")

    def release(self, target: Any) -> None:
        """Authenticated: replay what was held into ``target`` and let the body flow again."""
        self.target = target
        pieces, self.pieces, self.held = self.pieces, [], 0
        if self.paused:  # before the replay: the sink may pause the transport again itself
            self.paused = False
            self.request.transport_call("resumeProducing")
        for piece in pieces:
            target.write(piece)

    def drop(self) -> None:
        self.dropped = True
        self.pieces, self.held = [], 0

    def close(self) -> None:
        self.drop()


