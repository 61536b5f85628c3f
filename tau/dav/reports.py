"""REPORT dispatch (RFC 3253 §3.6) and the sync-collection report (RFC 6578 §3).

Reports are looked up by the body's root element; stores and extensions register their own
(CalDAV adds calendar-query, calendar-multiget, free-busy-query). A report the resource does
not advertise in ``DAV:supported-report-set`` is 403 ``DAV:supported-report``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tau.dav.context import MULTISTATUS, DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.propfind import PropRequest, propstats
from tau.dav.resource import Collection
from tau.dav.xml import Multistatus, dav, text

ReportHandler = Callable[["DavContext", Any], Awaitable["DavResponse"]]


class ReportRegistry:
    def __init__(self) -> None:
        self.handlers: dict[str, ReportHandler] = {dav("sync-collection"): sync_collection}

    def register(self, name: str, handler: ReportHandler) -> None:
        self.handlers[name] = handler

    async def handle(self, ctx: DavContext) -> DavResponse:
        resource = ctx.resource
        if resource is None:
            raise DavError(404, "no such resource")
        root = ctx.xml_body()
        if root is None:
            raise DavError(400, "REPORT needs a body")
        handler = self.handlers.get(root.tag)
        if handler is None or root.tag not in ctx.provider.supported_reports(resource):
            raise DavError(403, f"report {root.tag} is not supported here", "<D:supported-report/>")
        return await handler(ctx, root)


def _nresults(root: Any) -> int | None:
    """``DAV:limit/DAV:nresults`` (RFC 6578 §6.1, RFC 5323 §5.17): a positive integer, or None."""
    elem = root.find(dav("limit"))
    if elem is None:
        return None
    value = (elem.findtext(dav("nresults")) or "").strip()
    if not value.isdigit() or not 0 < int(value) <= 1_000_000:
        raise DavError(400, "DAV:limit needs a positive DAV:nresults")
    return int(value)


async def sync_collection(ctx: DavContext, root: Any) -> DavResponse:
    """Members changed or removed since ``DAV:sync-token`` (empty: everything, RFC 6578 §3.4)."""
    collection = ctx.resource
    if not isinstance(collection, Collection):
        raise DavError(403, "sync-collection needs a collection", "<D:supported-report/>")
    token_elem = root.find(dav("sync-token"))
    if token_elem is None:
        raise DavError(400, "sync-collection needs a sync-token element")
    token = (token_elem.text or "").strip() or None
    level = (root.findtext(dav("sync-level")) or "1").strip()
    if level not in ("1", "infinite"):
        raise DavError(400, "sync-level must be 1 or infinite")
    prop = root.find(dav("prop"))
    req = PropRequest("prop", [p.tag for p in prop]) if prop is not None else PropRequest("prop", [])
    limit = _nresults(root)
    if limit is not None and collection.sync_limit_supported:
        result = await collection.sync_changes(token, level == "infinite", limit=limit)
    else:
        result = await collection.sync_changes(token, level == "infinite")
        if limit is not None and len(result.changed) + len(result.removed) > limit:
            raise DavError(507, f"more than {limit} changes", "<D:number-of-matches-within-limits/>")
    ms = Multistatus()
    base, key = ctx.resolved.segments, ctx.resolved.lock_key
    for rel, member in result.changed:
        segs = base + rel
        groups = await propstats(ctx, member, segs, key + tuple(rel), req)
        ms.propstat(ctx.href(segs, member.is_collection), groups)
    for rel in result.removed:
        ms.status(ctx.href(base + rel), 404)
    if result.truncated:  # RFC 6578 §3.7: the request-URI carries the 507; the token continues
        ms.status(ctx.href(base, True), 507, "<D:number-of-matches-within-limits/>")
    ms.raw(f"<D:sync-token>{text(result.token)}</D:sync-token>")
    return DavResponse(207, ms.render(), MULTISTATUS)
