"""LOCK and UNLOCK (RFC 4918 §9.10, §9.11) on top of ``tau.dav.locks.LockSnapshot`` (write-through to the
shared lock store).

A LOCK with a ``lockinfo`` body creates a lock (200, or 201 when the URL was unmapped: an
empty resource is created, RFC 4918 §7.3 "locked empty resources" rather than RFC 2518's
lock-null). A LOCK without a body refreshes the lock named in the If header. The response
carries ``Lock-Token`` and the ``lockdiscovery`` of the new lock.
"""

from __future__ import annotations

from tau.dav.context import MULTISTATUS, DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.locks import lock_discovery, parse_timeout
from tau.dav.xml import dav, element_to_xml


class _EmptyBody:
    """The zero-byte body of the resource a LOCK creates on an unmapped URL."""

    size = 0

    def __init__(self, writer: object) -> None:
        self._writer = writer

    async def finish(self) -> object:
        return await self._writer.commit()  # type: ignore[attr-defined]

    async def abort(self) -> None:
        await self._writer.abort()  # type: ignore[attr-defined]


def _prop_body(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:">'
            f"<D:lockdiscovery>{inner}</D:lockdiscovery></D:prop>").encode()


def _need_write(resource: object) -> None:
    """A write lock keeps others from writing, so only someone who may write may take one: a
    read-only share recipient must not lock the owner out (403, as Apache mod_dav's ACL does)."""
    if not getattr(resource, "writable", True):
        raise DavError(403, "you may not write here, so you may not lock it", "<D:need-privileges/>")


async def handle_lock(ctx: DavContext) -> DavResponse:
    resolved = ctx.resolved
    timeout = parse_timeout(ctx.header("timeout"), ctx.server.max_lock_timeout)
    root = ctx.xml_body(dav("lockinfo"))
    now = ctx.server.clock()
    if root is None:  # refresh
        if resolved.resource is None:
            raise DavError(404, "no such resource")
        if not ctx.tokens:
            raise DavError(400, "lock refresh needs the lock token in an If header")
        for token in ctx.tokens:
            lock = ctx.locks.get(token)
            if lock is not None and lock.covers(resolved.lock_key):
                lock = await ctx.locks.refresh(token, resolved.lock_key, ctx.principal, timeout)
                return DavResponse(200, _prop_body(lock_discovery([lock], now)), MULTISTATUS)
        raise DavError(412, "no matching lock to refresh", "<D:lock-token-matches-request-uri/>")
    scope = root.find(dav("lockscope"))
    ltype = root.find(dav("locktype"))
    if scope is None or ltype is None or ltype.find(dav("write")) is None:
        raise DavError(400, "lockinfo needs lockscope and a write locktype")
    exclusive = scope.find(dav("exclusive")) is not None
    if not exclusive and scope.find(dav("shared")) is None:
        raise DavError(400, "lockscope must be exclusive or shared")
    owner = root.find(dav("owner"))
    owner_xml = element_to_xml(owner) if owner is not None else ""
    depth = ctx.depth("infinity", ("0", "infinity"))
    created = False
    if resolved.resource is None:
        if resolved.parent is None or not resolved.segments:
            raise DavError(409, "the parent collection does not exist")
        _need_write(resolved.parent)
        ctx.check_write(resolved.lock_key, member_of=resolved.lock_key[:-1])
    else:
        _need_write(resolved.resource)
    infinite = depth == "infinity" and (resolved.resource is None or resolved.resource.is_collection)
    href = ctx.href(resolved.segments, bool(resolved.resource and resolved.resource.is_collection))
    lock = await ctx.locks.create(resolved.lock_key, href, exclusive, infinite, owner_xml, ctx.principal, timeout)
    if resolved.resource is None:
        try:
            writer = ctx.provider.empty_writer()  # type: ignore[attr-defined]
            await resolved.parent.put_member(resolved.segments[-1], _EmptyBody(writer), None, None)  # type: ignore[union-attr]
        except BaseException:
            await ctx.locks.remove(lock.token, resolved.lock_key, ctx.principal)
            raise
        created = True
    return DavResponse(201 if created else 200, _prop_body(lock_discovery([lock], now)), MULTISTATUS,
                       {"Lock-Token": f"<{lock.token}>"})


async def handle_unlock(ctx: DavContext) -> DavResponse:
    raw = (ctx.header("lock-token") or "").strip()
    if not (raw.startswith("<") and raw.endswith(">")):
        raise DavError(400, "UNLOCK needs a Lock-Token header")
    if ctx.resource is None:
        raise DavError(404, "no such resource")
    await ctx.locks.remove(raw[1:-1].strip(), ctx.resolved.lock_key, ctx.principal, overrides=ctx.overrides)
    return DavResponse(204)
