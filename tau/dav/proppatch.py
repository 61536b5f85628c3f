"""PROPPATCH (RFC 4918 §9.2): set and remove dead properties, all or nothing.

Instructions apply in document order; if any fails (a protected live property: 403 with
``DAV:cannot-modify-protected-property``), none is applied and the others answer 424 Failed
Dependency. Values are kept as the complete property element (namespaces, mixed content and
``xml:lang`` survive), as litmus' props suite checks.
"""

from __future__ import annotations

from tau.dav.context import MULTISTATUS, DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.xml import Multistatus, dav, element_to_xml, empty_element

MAX_VALUE = 64 * 1024


async def handle(ctx: DavContext) -> DavResponse:
    resource = ctx.resource
    if resource is None:
        raise DavError(404, "no such resource")
    root = ctx.xml_body(dav("propertyupdate"))
    if root is None:
        raise DavError(400, "PROPPATCH needs a propertyupdate body")
    ctx.check_write(ctx.resolved.lock_key)
    ops: list[tuple[str, str, str | None]] = []  # (op, name, xml)
    for instruction in root:
        if instruction.tag not in (dav("set"), dav("remove")):
            continue
        prop = next((c for c in instruction if c.tag == dav("prop")), None)
        if prop is None:
            raise DavError(400, "set/remove without prop")
        for elem in prop:
            if instruction.tag == dav("set"):
                xml = element_to_xml(elem)
                if len(xml) > MAX_VALUE:
                    raise DavError(413, "property value too large")
                ops.append(("set", elem.tag, xml))
            else:
                ops.append(("remove", elem.tag, None))
    if not ops:
        raise DavError(400, "PROPPATCH without instructions")
    registry = ctx.server.properties
    failed = {name for _, name, _ in ops if registry.is_protected(name)}
    ms = Multistatus()
    href = ctx.href(ctx.resolved.segments, resource.is_collection)
    names = list(dict.fromkeys(name for _, name, _ in ops))
    if failed or not resource.writable:
        groups = {403: [empty_element(n) for n in names if n in failed or not resource.writable],
                  424: [empty_element(n) for n in names if n not in failed and resource.writable]}
        ms.propstat(href, {code: props for code, props in groups.items() if props})
        return DavResponse(207, ms.render(), MULTISTATUS)
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for op, name, xml in ops:  # later instructions win (§9.2 document order)
        if op == "set":
            to_set[name] = xml or ""
            if name in to_remove:
                to_remove.remove(name)
        else:
            to_set.pop(name, None)
            to_remove.append(name)
    await resource.patch_properties(to_set, to_remove)
    ms.propstat(href, {200: [empty_element(n) for n in names]})
    return DavResponse(207, ms.render(), MULTISTATUS)
