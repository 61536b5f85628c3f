"""Quota at the headers: an upload that cannot fit in what is left of its owner's quota is refused
before a byte of it is stored.

A declared ``Content-Length`` over the room left is answered at once (DAV: 507 with
``DAV:quota-not-exceeded``, RFC 4331 §6; REST: 507 ``quota_exceeded``); any other body gets a
``BodyCap`` with that room, which the streaming sink (``tau.dav.put.UploadBody``) enforces: past
it, it stops storing, drops the partial blob and the request is answered the same error.
These checks read usage without the row lock: the exact check stays where the file is linked
(``tau.files.store``); this one only keeps a hopeless body off the disk.
"""

from __future__ import annotations

from typing import Any

from tau.dav import paths
from tau.dav.errors import DavError
from tau.dav.quota import insufficient_storage
from tau.files.lookup import Lookup
from tau.files.service_tree import FileTree
from tau.http.errors import HttpError
from tau.http.site import Admission, BodyCap

#: a multipart body carries boundaries, part headers and small fields around the file: a declared
#: length this much over the room is still streamed (and cut by the cap on the file's bytes)
MULTIPART_SLACK = 64 * 1024
DAV_ERROR_TYPE = "application/xml; charset=utf-8"


def room(info: Lookup) -> int | None:
    """Bytes the upload may take at ``info``'s path (replacing a file frees its size); None: no quota."""
    if not info.limit:
        return None
    credit = info.node.size if info.node is not None and not info.node.is_folder else 0
    return max(0, info.limit - info.used + credit)


def rest_quota_error() -> HttpError:
    """The REST answer to an upload over the quota (the one ``FilesApi.upload`` gives)."""
    return HttpError(507, "quota_exceeded", "storage quota exceeded")


def dav_quota_error(info: Lookup, needed: int | None) -> HttpError:
    """507 with the ``DAV:error`` body of ``tau.dav.quota.insufficient_storage``."""
    dav = insufficient_storage(info.used, info.limit, needed or 0)
    error = HttpError(507, "quota_exceeded", dav.message, headers=dict(dav.headers))
    error.body, error.content_type = dav.body(), DAV_ERROR_TYPE
    return error


def dav_admission(tree: FileTree, prefix: str) -> Admission:
    """The admission of a PUT under ``prefix`` (``/dav/files``): the quota of the tree it lands in."""
    mount = [s for s in prefix.split("/") if s]

    async def admit(request: Any, user: Any, length: int | None) -> BodyCap | None:
        raw = (getattr(request.channel, "_path", b"") or b"").split(b"?", 1)[0]
        try:
            rel = paths.strip_prefix(paths.split_path(raw)[0], mount)
        except DavError:
            rel = []
        if rel and rel[0].lower() == str(user.address).lower():
            info = await tree.lookup(user, rel[1:])
        else:  # refused later by the DAV pipeline; meanwhile bounded by the caller's own quota
            info = await tree.lookup(user, [])
        free = room(info)
        if free is None:
            return None
        error = dav_quota_error(info, length)
        if length is not None and length > free:
            raise error
        return BodyCap(free, error)

    return admit


def rest_admission(tree: FileTree, parse_path: Any, query_arg: Any) -> Admission:
    """The admission of ``POST /api/files?path=``: a missing or bad path is refused at once (as the
    handler would), then the quota of the tree the path is in."""

    async def admit(request: Any, user: Any, length: int | None) -> BodyCap | None:
        info = await tree.lookup(user, parse_path(query_arg(request, "path")))
        free = room(info)
        if free is None:
            return None
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        declared = length - MULTIPART_SLACK if length is not None and ctype == b"multipart/form-data" else length
        if declared is not None and declared > free:
            raise rest_quota_error()
        return BodyCap(free, rest_quota_error())

    return admit
