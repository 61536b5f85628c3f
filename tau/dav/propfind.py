"""PROPFIND (RFC 4918 §9.1): allprop (with include), propname, prop; Depth 0 and 1.

Depth infinity is refused with 403 and ``DAV:propfind-finite-depth`` (§9.1, §16), as the RFC
allows: walking a whole tree per request is a denial-of-service lever. An empty body means
allprop. ``propstats`` is shared with REPORTs (sync-collection, CalDAV's multiget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tau.dav.errors import DavError
from tau.dav.resource import Resource
from tau.dav.xml import Multistatus, dav, empty_element, prop_element

if TYPE_CHECKING:
    from tau.dav.server import DavContext, DavResponse


@dataclass
class PropRequest:
    mode: str  # "allprop" | "propname" | "prop"
    names: list[str] = field(default_factory=list)  # prop names, or allprop's include


def parse_prop_request(root: object | None) -> PropRequest:
    """The ``allprop``/``propname``/``prop`` part of a PROPFIND or REPORT body."""
    if root is None:
        return PropRequest("allprop")
    children = list(root)  # type: ignore[call-overload]
    tags = [c.tag for c in children]
    if dav("propname") in tags:
        return PropRequest("propname")
    if dav("allprop") in tags:
        include = next((c for c in children if c.tag == dav("include")), None)
        return PropRequest("allprop", [p.tag for p in include] if include is not None else [])
    prop = next((c for c in children if c.tag == dav("prop")), None)
    if prop is None:
        raise DavError(400, "PROPFIND body needs prop, allprop or propname")
    return PropRequest("prop", [p.tag for p in prop])


async def propstats(ctx: DavContext, resource: Resource, segments: list[str], key: tuple[str, ...],
                    req: PropRequest) -> dict[int, list[str]]:
    """The propstat groups of one resource for a PROPFIND-style request."""
    registry = ctx.server.properties
    pctx = ctx.pctx(segments, key, resource.is_collection)
    found: list[str] = []
    missing: list[str] = []
    if req.mode == "prop":
        dead: dict[str, str] | None = None
        for name in req.names:
            value = await registry.value(name, resource, pctx)
            if value is not None:
                found.append(prop_element(name, value))
                continue
            if dead is None:
                dead = await resource.dead_properties()
            if name in dead:
                found.append(dead[name])
            else:
                missing.append(empty_element(name))
        return {200: found, 404: missing}
    live = await registry.present(resource, pctx, allprop_only=(req.mode == "allprop"))
    dead = await resource.dead_properties()
    if req.mode == "propname":
        names = list(live) + [n for n in dead if n not in live]
        return {200: [empty_element(n) for n in names]}
    found = [prop_element(n, v) for n, v in live.items()]
    found += [xml for n, xml in dead.items() if n not in live]
    for name in req.names:  # DAV:include asks for properties outside allprop
        if name in live or name in dead:
            continue
        value = await registry.value(name, resource, pctx)
        if value is not None:
            found.append(prop_element(name, value))
        else:
            missing.append(empty_element(name))
    return {200: found, 404: missing}


async def handle(ctx: DavContext) -> DavResponse:
    from tau.dav.server import MULTISTATUS, DavResponse

    depth = ctx.depth("infinity")
    if depth == "infinity":
        raise DavError(403, "Depth: infinity is not supported", "<D:propfind-finite-depth/>")
    req = parse_prop_request(ctx.xml_body(dav("propfind")))
    resource = ctx.resource
    if resource is None:
        raise DavError(404, "no such resource")
    segments, key = ctx.resolved.segments, ctx.resolved.lock_key
    ms = Multistatus()
    ms.propstat(ctx.href(segments, resource.is_collection), await propstats(ctx, resource, segments, key, req))
    if depth == "1" and resource.is_collection:
        for member in await resource.members():  # type: ignore[attr-defined]
            msegs = segments + [member.name]
            groups = await propstats(ctx, member, msegs, key + (member.name,), req)
            ms.propstat(ctx.href(msegs, member.is_collection), groups)
    return DavResponse(207, ms.render(), MULTISTATUS)
