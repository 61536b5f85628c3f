"""MKCOL (RFC 4918 §9.3): 201, 405 over an existing resource, 409 without a parent, 415 with a body.

Extended MKCOL bodies (RFC 5689) are handed to the parent collection, which may accept them
(CalDAV's calendars) or refuse with 415.
"""

from __future__ import annotations

from tau.dav.context import DavContext, DavResponse
from tau.dav.errors import DavError


async def handle(ctx: DavContext) -> DavResponse:
    resolved = ctx.resolved
    if resolved.resource is not None:
        raise DavError(405, "a resource exists at this URL", headers={"Allow": ctx.server.allow()})
    parent = resolved.parent
    if parent is None or not resolved.segments:
        raise DavError(409, "the parent collection does not exist")
    body = None
    if ctx.read_body().strip():  # extended MKCOL (RFC 5689); anything else is 415 (§9.3.1)
        try:
            body = ctx.xml_body()
        except DavError as exc:
            raise DavError(413 if exc.status == 413 else 415, "MKCOL body not understood")
    ctx.check_write(resolved.lock_key, member_of=resolved.lock_key[:-1])
    await parent.create_collection(resolved.segments[-1], body)
    return DavResponse(201, b"", None, {"Location": ctx.href(resolved.segments, True)})
