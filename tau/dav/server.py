"""The twisted.web resource that serves one DAV tree: parse, resolve, check, dispatch.

Every request goes through the same steps (RFC 4918 §8): split and normalise the path, resolve
it with the provider (which enforces who may see what), load the shared locks that concern it
(one query, ``load_locks``), evaluate the If header (§10.4) against
the resources it names, then run the method's module. Errors are ``DavError``s rendered as
``DAV:error`` bodies. Request bodies never sit in Twisted's buffer: ``install_sinks`` streams PUT
bodies to storage and bounds every other body at ``xml.MAX_BODY``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource as WebResource
from twisted.web.server import NOT_DONE_YET

from tau.dav import conditions, copymove, delete, get, lockmethods, mkcol, paths, propfind, proppatch, put, reports
from tau.dav.context import MULTISTATUS, DavContext, DavResponse, Handler
from tau.dav.errors import DavError
from tau.dav.locks import MAX_TIMEOUT, Key, LockSnapshot, LockStore, MemoryLockStore
from tau.dav.properties import PropContext, PropertyRegistry, standard_properties
from tau.dav.resource import DavProvider, Resolved
from tau.dav.xml import MAX_BODY
from tau.storage.budget import StatementTimeout
from tau.storage.faults import RETRY_AFTER, is_unavailable

log = Logger()

READ_METHODS = {"GET", "HEAD", "OPTIONS"}  # never look at locks (unless an If header names tokens)
DEEP_METHODS = {"DELETE", "COPY", "MOVE", "REPORT"}  # also need the locks below the request path


class DavServer(WebResource):
    """Mounted at ``prefix`` (e.g. ``/dav/files``) behind the router's authentication."""

    isLeaf = True

    def __init__(self, provider: DavProvider, prefix: str, clock: Callable[[], float],
                 properties: PropertyRegistry | None = None, locks: LockStore | None = None,
                 db: Any = None, max_lock_timeout: int = MAX_TIMEOUT) -> None:
        super().__init__()
        self.provider = provider
        self.prefix = [s for s in prefix.split("/") if s]
        self.clock = clock
        self.max_lock_timeout = max_lock_timeout
        self.properties = properties or standard_properties()
        if locks is None:  # with a database, locks are shared by every node (tau.dav.lockdb)
            from tau.dav.lockdb import DbLockStore

            locks = DbLockStore(db, prefix, clock) if db is not None else MemoryLockStore(clock)
        self.lock_store: LockStore = locks
        self.reports = reports.ReportRegistry()
        self.methods: dict[str, Handler] = {
            "OPTIONS": self.options, "GET": get.handle_get, "HEAD": get.handle_get, "PUT": put.handle,
            "DELETE": delete.handle, "MKCOL": mkcol.handle, "PROPFIND": propfind.handle,
            "PROPPATCH": proppatch.handle, "COPY": copymove.handle, "MOVE": copymove.handle,
            "LOCK": lockmethods.handle_lock, "UNLOCK": lockmethods.handle_unlock,
            "REPORT": self.reports.handle,
        }

    def add_method(self, name: str, handler: Handler) -> None:
        """Serve another method (CalDAV's MKCALENDAR, RFC 4791 §5.3.1) with the same pipeline."""
        self.methods[name.upper()] = handler

    def key_href(self, key: tuple[str, ...]) -> str:
        return paths.encode_path(self.prefix + list(key))

    def render(self, request: Any) -> Any:
        d = defer.ensureDeferred(self._handle(request))
        d.addErrback(request.processingFailed)
        return NOT_DONE_YET

    async def _handle(self, request: Any) -> None:
        method = request.method.decode("latin-1").upper()
        ctx: DavContext | None = None
        try:
            handler = self.methods.get(method)
            if handler is None:
                raise DavError(405, f"{method} is not supported", headers={"Allow": self.allow()})
            segments, trailing = paths.split_path(request.path)
            rel = paths.strip_prefix(segments, self.prefix)
            resolved = await self.provider.resolve(request.user, rel)
            if_lists = conditions.parse_if(self._header(request, "if"))
            ctx = DavContext(self, request, method, resolved, trailing, if_lists,
                             conditions.submitted_tokens(if_lists), await self.load_locks(request, method,
                                                                                          resolved, if_lists))
            if if_lists and not await conditions.evaluate_if(if_lists, lambda tag: self._state(ctx, tag)):
                raise DavError(412, "If header conditions are not met")
            response = await handler(ctx)
            if ctx.broken and response is not None and response.status < 300:
                await ctx.locks.forget(ctx.broken)
        except DavError as exc:
            response = DavResponse(exc.status, exc.body(), MULTISTATUS, dict(exc.headers))
        except StatementTimeout:
            exc = DavError(503, "the query took too long and was stopped", headers={"Retry-After": "5"})
            response = DavResponse(exc.status, exc.body(), MULTISTATUS, dict(exc.headers))
        except Exception as exc:
            if not is_unavailable(exc):
                raise  # a bug: the site logs it and answers 500
            log.warn("{method} {path}: storage unavailable: {exc}", method=method, path=request.path,
                     exc=repr(exc)[:300])
            down = DavError(503, "storage is temporarily unavailable; retry later",
                            headers={"Retry-After": str(RETRY_AFTER)})
            response = DavResponse(503, down.body(), MULTISTATUS, dict(down.headers))
        finally:
            if ctx is None or not ctx.body_used:
                abort = getattr(request.content, "abort", None)
                if abort is not None:
                    await abort()
        if response is not None:
            self.send(request, response)

    async def load_locks(self, request: Any, method: str, resolved: Resolved,
                         if_lists: list[conditions.IfList]) -> LockSnapshot:
        """The request's lock snapshot: one indexed query, none for a plain read.

        Locks on the request path and its ancestors; for methods that act on or report a
        subtree, also every lock below it.
        """
        snapshot = LockSnapshot(self.lock_store, self.clock)
        if method in READ_METHODS and not if_lists:
            return snapshot
        key = resolved.lock_key
        deep: list[Key] = []
        if method in DEEP_METHODS or (method == "PROPFIND" and self._header(request, "depth") != "0"):
            deep = [key]
        snapshot.add(await self.lock_store.load([key], deep))
        return snapshot

    @staticmethod
    def _header(request: Any, name: str) -> str | None:
        value = request.getHeader(name.encode())
        return None if value is None else value.decode("latin-1")

    async def _state(self, ctx: DavContext, tag: str | None) -> conditions.State:
        """The etag and lock tokens of the request URI, or of a tagged list's resource."""
        resolved = ctx.resolved
        if tag is not None:
            try:
                segs = paths.strip_prefix(paths.parse_destination(tag, ctx.header("host"), False), self.prefix)
                resolved = await ctx.resolve_other(segs)
            except DavError:
                return conditions.State(None, set())
        res = resolved.resource
        tokens = {lock.token for lock in ctx.locks.covering(resolved.lock_key)}
        return conditions.State(res.etag() if res is not None else None, tokens)

    def allow(self) -> str:
        return ", ".join(sorted(self.methods))

    async def options(self, ctx: DavContext) -> DavResponse:
        """RFC 4918 §10.1: compliance classes 1, 2 and 3; a provider adds its own (``calendar-access``)."""
        classes = ", ".join(["1", "2", "3", *getattr(self.provider, "dav_classes", [])])
        return DavResponse(200, b"", None, {"DAV": classes, "Allow": self.allow(), "MS-Author-Via": "DAV",
                                            "Accept-Ranges": "bytes"})

    def send(self, request: Any, response: DavResponse) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setResponseCode(response.status)
        for name, value in response.headers.items():
            request.setHeader(name.encode(), value.encode("latin-1"))
        if response.content_type:
            request.setHeader(b"content-type", response.content_type.encode())
        if response.status not in (204, 304):
            request.setHeader(b"content-length", str(len(response.body)).encode())
        if response.body and request.method != b"HEAD" and response.status not in (204, 304):
            request.write(response.body)
        request.finish()

    def prop_context(self, ctx: DavContext, segments: list[str], key: tuple[str, ...], collection: bool) -> PropContext:
        return ctx.pctx(segments, key, collection)


class BoundedBody:
    """Request body sink for non-PUT methods: keeps at most ``limit`` bytes, then discards.

    An XML bomb or a 50 MB PROPFIND therefore never sits in memory or a temp file; the handler
    answers 413 when it sees ``overflowed``.
    """

    def __init__(self, request: Any, length: int | None, limit: int = MAX_BODY) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.limit = limit
        self.overflowed = length is not None and length > limit

    def write(self, data: bytes) -> None:
        if self.overflowed:
            return
        if len(self._buf) + len(data) > self.limit:
            self.overflowed = True
            self._buf = bytearray()
            return
        self._buf += data

    def tell(self) -> int:
        return 0  # keeps twisted.web from parsing the body as a form

    def seek(self, offset: int, whence: int = 0) -> None:
        self._pos = offset

    def read(self, size: int = -1) -> bytes:
        data = bytes(self._buf[self._pos:]) if size < 0 else bytes(self._buf[self._pos:self._pos + size])
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._buf = bytearray()


XML_METHODS = {"PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "REPORT", "MKCOL", "COPY", "MOVE", "DELETE",
               "OPTIONS", "GET", "HEAD", "POST", "MKCALENDAR", "ACL", "SEARCH"}


def install_sinks(site: Any, prefix: str, upload_factory: Callable[[Any, int | None], Any],
                  auth: str | None = None) -> None:
    """Stream PUT bodies under ``prefix`` through ``upload_factory``; bound all other bodies.

    ``auth``: the mount's mode; the site then authenticates a PUT when its headers arrive and
    creates the upload only for an authenticated one (a refused PUT stores nothing).
    """
    site.add_body_sink(prefix, {"PUT"}, upload_factory, auth=auth)
    site.add_body_sink(prefix, XML_METHODS, lambda request, length: BoundedBody(request, length))
