"""DELETE (RFC 4918 §9.6): a resource, or a collection with everything below it (Depth infinity).

Every lock at or below the resource and the depth-0 lock of its parent must be submitted
(§7.4); the store removes the subtree in one transaction, so a failure leaves it intact and no
207 with partial results is needed. Locks below the deleted URL are then forgotten.
"""

from __future__ import annotations

from tau.dav import conditions
from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError


async def handle(ctx: DavContext) -> DavResponse:
    resolved = ctx.resolved
    resource = resolved.resource
    if resource is None:
        raise DavError(404, "no such resource")
    if resource.is_collection:
        ctx.depth("infinity", ("infinity",))
    if resolved.parent is None:
        raise DavError(403, "the root collection cannot be deleted")
    conditions.check_preconditions(ctx.header, resource.etag(), True, resource.last_modified(), read=False)
    ctx.check_write(resolved.lock_key, depth=True, member_of=resolved.lock_key[:-1])
    await resolved.parent.delete_member(resource)
    await ctx.locks.drop_within(resolved.lock_key)
    return DavResponse(204)
