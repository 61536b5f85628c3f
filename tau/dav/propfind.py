"""PROPFIND (RFC 4918 §9.1): allprop (with include), propname, prop; Depth 0 and 1.

Depth infinity is refused with 403 and ``DAV:propfind-finite-depth`` (§9.1, §16), as the RFC
allows: walking a whole tree per request is a denial-of-service lever. An empty body means
allprop. ``propstats`` is shared with REPORTs (sync-collection, CalDAV's multiget).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from tau.dav.context import MULTISTATUS, DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.paths import encode_segment
from tau.dav.properties import PropContext
from tau.dav.resource import Resource
from tau.dav.xml import Multistatus, dav, empty_element, prop_element


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


async def _resolve(value: object) -> str | None:
    """A getter's result: most getters are synchronous; the rest return an awaitable."""
    if value is None or value.__class__ is str:
        return value  # type: ignore[return-value]
    result = await value  # type: ignore[misc]
    return result  # type: ignore[no-any-return]


async def propstats(ctx: DavContext, resource: Resource, segments: list[str], key: tuple[str, ...],
                    req: PropRequest, href: str | None = None) -> dict[int, list[str]]:
    """The propstat groups of one resource for a PROPFIND-style request.

    ``href``: the resource's encoded path when the caller has it already (Depth 1 builds member
    hrefs from the collection's). Getters run inline: a 1,000-member PROPFIND is the hot path.
    """
    props = ctx.server.properties.props
    pctx = ctx.pctx(segments, key, resource.is_collection, href)
    found: list[str] = []
    missing: list[str] = []
    if req.mode == "prop":
        dead: dict[str, str] | None = None
        for name in req.names:
            prop = props.get(name)
            value = None
            if prop is not None:
                value = prop.get(resource, pctx)
                if value is not None and value.__class__ is not str:
                    value = await _resolve(value)
            if value is not None:
                found.append(prop_element(name, value))  # type: ignore[arg-type]
                continue
            if dead is None:
                dead = await resource.dead_properties()
            if name in dead:
                found.append(dead[name])
            else:
                missing.append(empty_element(name))
        return {200: found, 404: missing}
    allprop = req.mode == "allprop"
    live: dict[str, str] = {}
    for name, prop in props.items():
        if allprop and not prop.allprop:
            continue
        value = prop.get(resource, pctx)
        if value is not None and value.__class__ is not str:
            value = await _resolve(value)
        if value is not None:
            live[name] = value  # type: ignore[assignment]
    dead = await resource.dead_properties()
    if req.mode == "propname":
        names = list(live) + [n for n in dead if n not in live]
        return {200: [empty_element(n) for n in names]}
    found = [prop_element(n, v) for n, v in live.items()]
    found += [xml for n, xml in dead.items() if n not in live]
    for name in req.names:  # DAV:include asks for properties outside allprop
        if name in live or name in dead:
            continue
        prop = props.get(name)
        value = None if prop is None else await _resolve(prop.get(resource, pctx))
        if value is not None:
            found.append(prop_element(name, value))
        else:
            missing.append(empty_element(name))
    return {200: found, 404: missing}


def _sync_plan(ctx: DavContext, req: PropRequest) -> list[tuple[str, Any]] | None:
    """(name, live property or None) for a ``prop`` request whose getters are all plain functions:
    members are then rendered without a coroutine each. None: use ``propstats``."""
    if req.mode != "prop":
        return None
    props = ctx.server.properties.props
    plan = [(name, props.get(name)) for name in req.names]
    if any(prop is not None and inspect.iscoroutinefunction(prop.get) for _, prop in plan):
        return None
    return plan


def _sync_propstats(plan: list[tuple[str, Any]], resource: Resource, pctx: PropContext) -> dict[int, list[str]] | None:
    """``propstats`` for a ``_sync_plan``; None when a value or the dead properties need I/O."""
    found: list[str] = []
    missing: list[str] = []
    for name, prop in plan:
        value = None if prop is None else prop.get(resource, pctx)
        if value is not None:
            if value.__class__ is not str:
                getattr(value, "close", lambda: None)()  # an awaitable after all: the async path
                return None
            found.append(prop_element(name, value))
            continue
        dead = resource.loaded_dead_properties()
        if dead is None:
            return None
        if name in dead:
            found.append(dead[name])
        else:
            missing.append(empty_element(name))
    return {200: found, 404: missing}


async def handle(ctx: DavContext) -> DavResponse:
    depth = ctx.depth("infinity")
    if depth == "infinity":
        raise DavError(403, "Depth: infinity is not supported", "<D:propfind-finite-depth/>")
    req = parse_prop_request(ctx.xml_body(dav("propfind")))
    resource = ctx.resource
    if resource is None:
        raise DavError(404, "no such resource")
    segments, key = ctx.resolved.segments, ctx.resolved.lock_key
    ms = Multistatus()
    own = ctx.href(segments, resource.is_collection)
    ms.propstat(own, await propstats(ctx, resource, segments, key, req, own))
    if depth == "1" and resource.is_collection:
        base = own if own.endswith("/") else own + "/"
        plan = _sync_plan(ctx, req)
        for member in await resource.members():  # type: ignore[attr-defined]
            name = member.name
            href = base + encode_segment(name) + ("/" if member.is_collection else "")
            groups = None
            if plan is not None:
                groups = _sync_propstats(plan, member, ctx.pctx(segments, key + (name,), member.is_collection, href))
            if groups is None:
                groups = await propstats(ctx, member, segments + [name], key + (name,), req, href)
            ms.propstat(href, groups)
    return DavResponse(207, ms.render(), MULTISTATUS)
