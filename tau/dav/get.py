"""GET and HEAD (RFC 7231 §4.3.1-2) with ETag/Last-Modified (RFC 7232) and Range (RFC 7233).

One byte range is served with 206 (several ranges get the whole entity, which §3.1 allows);
an unsatisfiable range is 416 with ``Content-Range: bytes */size``; ``If-Range`` falls back
to the whole entity when the validator changed. Bodies stream with back-pressure: the next
chunk is read (and decrypted) only once the transport has taken the previous one.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tau.dav import conditions
from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError
from tau.http import usercontent
from tau.http.pageheaders import page_headers

log = Logger()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` → (start, end exclusive); None to serve everything; 416 if unsatisfiable."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise DavError(416, "unsatisfiable range", headers={"Content-Range": f"bytes */{size}"})
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start < 0 or (last and end <= start):
        return None
    if start >= size:
        raise DavError(416, "unsatisfiable range", headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size)


@implementer(IPushProducer)
class _Pump:
    """Pauses the writer loop while the transport's buffer is full."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiting: defer.Deferred[None] | None = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        if self._waiting is not None:
            d, self._waiting = self._waiting, None
            d.callback(None)

    async def ready(self) -> None:
        if self.paused and not self.stopped:
            self._waiting = defer.Deferred()
            await self._waiting


STREAM_SEND_LIMIT = 1024 * 1024


def _widen_sends(request: Any) -> Callable[[], None]:
    """Let the TCP transport hand the kernel up to 1 MiB per ``send()`` while a body streams.

    Twisted sends at most ``SEND_LIMIT`` (128 KiB) per reactor turn, so a 1 MiB piece of a large
    GET would take eight turns (measured: ~1.6x the throughput on loopback with 1 MiB). Returns
    the function that puts the default back.
    """
    transport = getattr(getattr(request, "channel", None), "transport", None)
    while getattr(transport, "transport", None) is not None:  # under wrappers (connection caps, TLS),
        transport = transport.transport  # which delegate reads of SEND_LIMIT but not writes
    limit = getattr(transport, "SEND_LIMIT", None)
    if not isinstance(limit, int) or limit >= STREAM_SEND_LIMIT:
        return lambda: None
    had_own = "SEND_LIMIT" in vars(transport)
    transport.SEND_LIMIT = STREAM_SEND_LIMIT  # type: ignore[union-attr]

    def restore() -> None:
        if had_own:
            transport.SEND_LIMIT = limit  # type: ignore[union-attr]
        else:
            vars(transport).pop("SEND_LIMIT", None)

    return restore


async def _next(source: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await source.__anext__()
    except StopAsyncIteration:
        return None


def _gone(request: Any) -> bool:
    """Has the client gone? Twisted then drops ``request.channel`` (and the producer with it)."""
    return bool(getattr(request, "_disconnected", False)) or getattr(request, "channel", None) is None


def _release(request: Any, restore: Callable[[], None]) -> None:
    """Unregister the pump, unless the connection (and with it the registration) is already gone."""
    restore()
    if not _gone(request) and getattr(request, "producer", None) is not None:
        request.unregisterProducer()


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close the chunk source now (its blob reader, its thread job), not when the GC finds it."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass


def finish_empty(request: Any) -> None:
    """Finish a body-less answer (HEAD, an empty range), unless the client has already gone."""
    if not _gone(request) and not request.finished:
        request.finish()


async def stream_body(request: Any, chunks: AsyncIterator[bytes]) -> None:
    """Write ``chunks`` to ``request`` with back-pressure, then finish it.

    A client may close the connection at any point, also right after the last byte and before
    ``finish`` (it has read Content-Length bytes): then the stream just stops, quietly. It may
    also have gone before the first byte, while the handler was still awaiting its lookups:
    Twisted has then dropped ``request.channel``, so nothing may be registered or written.
    """
    if _gone(request):
        await _close(chunks)
        return
    pump = _Pump()
    restore = _widen_sends(request)
    request.registerProducer(pump, True)
    source = chunks.__aiter__()
    failure: Failure | None = None
    try:
        # read ahead: the next piece is read and decrypted while the transport sends this one
        pending = defer.ensureDeferred(_next(source))
        while (chunk := await pending) is not None:
            if pump.stopped or _gone(request):
                break
            pending = defer.ensureDeferred(_next(source))
            request.write(chunk)
            await pump.ready()
        else:
            pending = None
        if pending is not None:
            await pending  # let the read-ahead finish before the source is closed
    except Exception:
        failure = Failure()
    finally:
        await _close(chunks)
    _release(request, restore)
    if _gone(request) or request.finished:
        return
    if failure is not None:
        if not request.startedWriting:  # nothing sent: the edge answers (503 for an outage, 500 for a bug)
            for name in _ENTITY_HEADERS:
                request.responseHeaders.removeHeader(name)
            failure.raiseException()
        log.failure("body stream failed for {path}", failure, path=request.path)
        request.channel.transport.loseConnection()  # the status line is gone: cut the response
        return
    request.finish()


_ENTITY_HEADERS = (b"content-length", b"content-range", b"content-type", b"content-disposition", b"etag",
                   b"last-modified", b"accept-ranges")


def entity_headers(resource: Any) -> dict[str, str]:
    headers = {"Accept-Ranges": "bytes"}
    if (etag := resource.etag()) is not None:
        headers["ETag"] = etag
    if (modified := resource.last_modified()) is not None:
        headers["Last-Modified"] = conditions.http_date(modified)
    return headers


async def handle_get(ctx: DavContext) -> DavResponse | None:
    resource = ctx.resource
    if resource is None:
        raise DavError(404, "no such resource")
    if resource.is_collection:
        return await _listing(ctx)
    headers = entity_headers(resource)
    status = conditions.check_preconditions(ctx.header, resource.etag(), True, resource.last_modified(), read=True)
    if status == 304:
        return DavResponse(304, b"", None, headers)
    size = resource.content_length() or 0
    wanted = parse_range(ctx.header("range"), size)
    if_range = ctx.header("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != (resource.etag() or ""):
        wanted = None
    start, end = wanted if wanted is not None else (0, size)
    request = ctx.request
    request.setResponseCode(206 if wanted is not None else 200)
    for name, value in headers.items():
        request.setHeader(name.encode(), value.encode("latin-1"))
    # user content: attachment unless a safe inline type, nosniff, sandbox CSP (tau.http.usercontent)
    usercontent.apply(request, usercontent.user_content_headers(resource.content_type(), resource.name))
    request.setHeader(b"content-length", str(end - start).encode())
    if wanted is not None:
        request.setHeader(b"content-range", f"bytes {start}-{end - 1}/{size}".encode())
    if ctx.method == "HEAD" or end == start:
        finish_empty(request)
        return None
    await stream_body(request, resource.open(start, end))
    return None


async def _listing(ctx: DavContext) -> DavResponse:
    """A minimal HTML index so a browser pointed at a folder sees its contents (no script: strict CSP)."""
    resource = ctx.resource
    rows = []
    for member in await resource.members():  # type: ignore[union-attr]
        href = ctx.href(ctx.resolved.segments + [member.name], member.is_collection)
        label = member.name + ("/" if member.is_collection else "")
        rows.append(f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>')
    title = html.escape(ctx.href(ctx.resolved.segments, True))
    body = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1><ul>{''.join(rows)}</ul></body></html>").encode()
    etag = resource.etag()
    headers = page_headers()
    if etag:
        headers["ETag"] = etag
    return DavResponse(200, body, "text/html; charset=utf-8", headers)
