"""PUT (RFC 4918 §9.7, RFC 7231 §4.3.4): bodies stream to storage as they arrive.

``UploadBody`` is the body sink installed for PUT: each chunk goes to an async writer (the
blob store's, which encrypts and writes in a thread) and the transport is paused while a
write is pending, so a 256 MiB upload holds about one chunk in memory. Nothing is committed
until the method accepts the request (authenticated, allowed, unlocked, within quota); a
refused or cut-off upload is aborted and leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from tau.dav import conditions
from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError
from tau.http.sinks import WriteOnlyBody

BATCH = 1024 * 1024


class UploadBody(WriteOnlyBody):
    """A streamed request body: ``write`` from twisted.web, ``finish``/``abort`` from the method."""

    def __init__(self, request: Any, length: int | None, writer_factory: Callable[[], Any]) -> None:
        self.request = request
        self.declared = length
        self.size = 0
        self._writer = writer_factory()
        self._failure: Failure | None = None
        self._pending = 0
        self._closed = False
        self._finished = False
        self._batch: list[bytes] = []  # pieces as received; joined once per BATCH (one copy)
        self._batched = 0
        #: the room the request was admitted with (tau.http.gate.BodyCap: what is left of the quota)
        self._cap = getattr(request, "body_cap", None)
        # a cut-off upload (connection lost) or a request refused before the body was used
        request.notifyFinish().addBoth(self._lost)

    # -- twisted.web side ----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed or self._failure is not None:
            return
        self.size += len(data)
        if self._cap is not None and self.size > self._cap.limit:
            self._over_cap()
            return
        # hand the writer about BATCH bytes at a time: one thread job per batch, not per read
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._batched:
            return
        data = self._batch[0] if len(self._batch) == 1 else b"".join(self._batch)
        self._batch, self._batched = [], 0
        d = self._writer.write(data)
        if d.called:
            d.addErrback(self._failed)
            return
        self._pending += 1
        if self._pending == 1:
            self._transport("pauseProducing")
        d.addErrback(self._failed)
        d.addBoth(self._written)

    def _over_cap(self) -> None:
        """The streamed bytes passed the quota: store no more, drop the partial blob, answer now."""
        assert self._cap is not None
        defer.ensureDeferred(self.abort())
        refuse = getattr(self.request, "refuse_body", None)
        if refuse is not None:
            refuse(self._cap.error)

    def _written(self, _: Any) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._transport("resumeProducing")

    def _transport(self, action: str) -> None:
        transport = getattr(getattr(self.request, "channel", None), "transport", None)
        if transport is not None and hasattr(transport, action) and not self._closed:
            try:
                getattr(transport, action)()
            except Exception:  # a closed TLS transport may refuse; nothing to throttle then
                pass

    def _failed(self, failure: Failure) -> None:
        if self._failure is None:
            self._failure = failure

    def _lost(self, _: Any) -> None:
        """The request ended without ``finish``: throw the partial blob away."""
        if not self._finished:
            defer.ensureDeferred(self.abort())

    # -- method side ---------------------------------------------------------------------------
    async def finish(self) -> Any:
        """Seal the upload; returns what the writer commits to (a ``BlobInfo``)."""
        if self._closed:
            raise DavError(400, "upload already closed")
        if self._failure is not None:
            self._closed = True
            self._failure.raiseException()
        if self.declared is not None and self.size != self.declared:
            raise DavError(400, "request body shorter than Content-Length")
        self._flush()
        self._finished = True
        self._closed = True
        return await self._writer.commit()

    async def abort(self) -> None:
        if self._closed and self._finished:
            return
        self._closed = True
        self._batch, self._batched = [], 0
        try:
            await self._writer.abort()
        except Exception:
            pass


async def handle(ctx: DavContext) -> DavResponse:
    resolved = ctx.resolved
    existing = resolved.resource
    if ctx.header("content-range") is not None:
        raise DavError(400, "PUT with Content-Range is not supported")  # RFC 7231 §4.3.4
    if existing is not None and existing.is_collection:
        raise DavError(405, "cannot PUT to a collection", headers={"Allow": ctx.server.allow()})
    if resolved.parent is None or not resolved.segments:
        raise DavError(409, "the parent collection does not exist")
    conditions.check_preconditions(ctx.header, existing.etag() if existing else None, existing is not None,
                                   existing.last_modified() if existing else None, read=False)
    key = resolved.lock_key
    ctx.check_write(key, member_of=key[:-1] if existing is None else None)
    body = ctx.request.content
    if not hasattr(body, "finish"):
        raise DavError(500, "PUT body was not streamed")
    ctype = ctx.header("content-type")
    resource = await resolved.parent.put_member(resolved.segments[-1], body, ctype, existing)
    ctx.body_used = True
    headers = {}
    etag = resource.etag()
    if etag:
        headers["ETag"] = etag
    if existing is None:
        headers["Location"] = ctx.href(resolved.segments)
    return DavResponse(204 if existing is not None else 201, b"", None, headers)
