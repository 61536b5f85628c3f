"""COPY and MOVE (RFC 4918 §9.8, §9.9): Destination, Overwrite and Depth.

Refused: a Destination on another server (502), outside this tree or another user's (403),
equal to the source or inside it (403: a folder cannot be copied into itself), under a missing
parent (409), or an existing resource with ``Overwrite: F`` (412). An existing destination is
replaced (204); a new one is created (201). The store moves or copies the whole subtree in one
transaction, dead properties included, so there is no partial result to report.
"""

from __future__ import annotations

from tau.dav import paths
from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError


async def handle(ctx: DavContext) -> DavResponse:
    move = ctx.method == "MOVE"
    source = ctx.resolved
    resource = source.resource
    if resource is None:
        raise DavError(404, "no such resource")
    if resource.is_collection:
        depth = ctx.depth("infinity", ("infinity",) if move else ("0", "infinity"))
    else:
        depth = ctx.depth("infinity")
    overwrite = (ctx.header("overwrite") or "T").strip().upper()
    if overwrite not in ("T", "F"):
        raise DavError(400, "Overwrite must be T or F")
    segments = paths.parse_destination(ctx.header("destination"), ctx.header("host"), ctx.request.isSecure())
    if segments[:len(ctx.server.prefix)] != ctx.server.prefix:
        raise DavError(403, "Destination is outside this DAV tree")
    target = await ctx.resolve_other(segments[len(ctx.server.prefix):])
    if source.parent is None and move:
        raise DavError(403, "the root collection cannot be moved")
    if target.lock_key == source.lock_key:
        raise DavError(403, "source and destination are the same resource")
    if resource.is_collection and target.lock_key[:len(source.lock_key)] == source.lock_key:
        raise DavError(403, "cannot copy or move a collection into itself")
    if target.parent is None or not target.segments:
        raise DavError(409, "the destination's parent collection does not exist")
    existing = target.resource
    if existing is not None and overwrite == "F":
        raise DavError(412, "destination exists and Overwrite is F")
    ctx.check_write(target.lock_key, depth=True, member_of=target.lock_key[:-1])
    if move:
        ctx.check_write(source.lock_key, depth=True, member_of=source.lock_key[:-1])
    await target.parent.transfer(resource, target.segments[-1], move, depth == "infinity", existing)
    if existing is not None:
        await ctx.locks.drop_within(target.lock_key)
    if move:
        await ctx.locks.drop_within(source.lock_key)
    headers = {} if existing is not None else {"Location": ctx.href(target.segments, resource.is_collection)}
    return DavResponse(204 if existing is not None else 201, b"", None, headers)
