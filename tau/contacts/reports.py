"""CardDAV REPORTs (RFC 6352 §8.6, §8.7): addressbook-query and addressbook-multiget.

Both return the stored vCard verbatim as ``CARDDAV:address-data`` (a ``C:prop`` selection inside
``address-data`` is accepted and the whole card is returned, which §10.4 allows a client to
receive). ``C:limit`` truncates a query and marks the request-URI 507 (§8.6.1).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tau.contacts import search
from tau.contacts.cardstore import CardRow
from tau.contacts.davtree import CARD, NS_CARD, AddressBook, CardResource
from tau.contacts.search import FilterError
from tau.dav import paths
from tau.dav.context import MULTISTATUS, DavContext, DavResponse
from tau.dav.errors import DavError
from tau.dav.propfind import PropRequest, parse_prop_request, propstats
from tau.dav.xml import Multistatus, dav, prop_element, text

DATA = CARD + "address-data"
MAX_HREFS = 10_000


def _props(root: Any) -> tuple[PropRequest, bool]:
    req = parse_prop_request(root) if any(ch.tag in (dav("prop"), dav("allprop"), dav("propname"))
                                          for ch in root) else PropRequest("prop", [])
    prop = root.find(dav("prop"))
    if prop is not None and prop.find(DATA) is not None:
        version = prop.find(DATA).get("version")
        if version not in (None, "3.0", "4.0"):
            raise DavError(403, f"vCard {version} is not supported",
                           f'<x:supported-address-data-conversion xmlns:x="{NS_CARD}"/>')
        return PropRequest("prop", [n for n in req.names if n != DATA]), True
    return req, False


async def _respond(ctx: DavContext, ms: Multistatus, base: list[str], key: tuple[str, ...], rows: list[CardRow],
                   req: PropRequest, data: bool, access: Any) -> None:
    for row in rows:
        member = CardResource(row, access)
        segs = base + [row.name]
        groups = await propstats(ctx, member, segs, key + (row.name,), req) if req.names or req.mode != "prop" \
            else {200: [], 404: []}
        if data:
            groups.setdefault(200, []).append(prop_element(DATA, text(row.data or "")))
        ms.propstat(ctx.href(segs), groups)


def _limit(root: Any) -> int | None:
    elem = root.find(CARD + "limit")
    if elem is None:
        return None
    value = (elem.findtext(CARD + "nresults") or "").strip()
    if not value.isdigit() or int(value) < 1:
        raise DavError(400, "CARDDAV:limit needs a positive nresults")
    return int(value)


async def addressbook_query(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 6352 §8.6."""
    resource = ctx.resource
    if not isinstance(resource, AddressBook):
        raise DavError(403, "addressbook-query needs an address book", "<D:supported-report/>")
    req, data = _props(root)
    try:
        f = search.parse_filter(root.find(CARD + "filter"))
    except FilterError as exc:
        raise DavError(exc.status, exc.message, f'<x:{exc.condition} xmlns:x="{NS_CARD}"/>')
    ms = Multistatus()
    if (ctx.header("depth") or "1").strip() == "0":
        return DavResponse(207, ms.render(), MULTISTATUS)
    rows = await search.query(resource.contacts, resource.book, f)
    limit = _limit(root)
    truncated = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    await _respond(ctx, ms, ctx.resolved.segments, ctx.resolved.lock_key, rows, req, data, resource.access)
    if truncated:
        ms.status(ctx.href(ctx.resolved.segments, True), 507, "<D:number-of-matches-within-limits/>")
    return DavResponse(207, ms.render(), MULTISTATUS)


async def addressbook_multiget(ctx: DavContext, root: Any) -> DavResponse:
    """RFC 6352 §8.7: every href of this address book in one query."""
    resource = ctx.resource
    req, data = _props(root)
    hrefs = [(h.text or "").strip() for h in root.findall(dav("href"))]
    if len(hrefs) > MAX_HREFS:
        raise DavError(403, "too many hrefs", "<D:number-of-matches-within-limits/>")
    ms = Multistatus()
    if isinstance(resource, CardResource):
        await _respond(ctx, ms, ctx.resolved.segments[:-1], ctx.resolved.lock_key[:-1], [resource.row], req, data,
                       resource.access)
        return DavResponse(207, ms.render(), MULTISTATUS)
    if not isinstance(resource, AddressBook):
        raise DavError(403, "addressbook-multiget needs an address book", "<D:supported-report/>")
    base = [*ctx.server.prefix, *ctx.resolved.segments]
    wanted: dict[str, str] = {}
    for href in hrefs:
        try:
            segs, _ = paths.split_path(urlsplit(href).path)
        except (DavError, ValueError):
            segs = []
        if segs and segs[:-1] == base:
            wanted[segs[-1]] = href
        else:
            ms.status(href, 404)
    rows = await resource.contacts.multiget(resource.book, list(wanted))
    for name, href in wanted.items():
        if name not in rows:
            ms.status(href, 404)
    await _respond(ctx, ms, ctx.resolved.segments, ctx.resolved.lock_key, [rows[n] for n in wanted if n in rows],
                   req, data, resource.access)
    return DavResponse(207, ms.render(), MULTISTATUS)
