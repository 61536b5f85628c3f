"""Resumable chunked uploads over REST (issue 19): ``/api/uploads``.

``POST /api/uploads {"path", "size"[, "content_type"]}`` → 201 ``{id, url, offset, size}``;
``PUT /api/uploads/{id}`` with ``Content-Range: bytes START-END/SIZE`` (or ``?offset=START``)
appends one chunk, streamed to the blob store (never whole in memory); a chunk that does not start
at the committed offset is 409 with that offset. ``GET``/``HEAD /api/uploads/{id}`` give the
committed offset (also as ``Upload-Offset``) so a client whose connection broke mid-chunk resumes
there. The chunk that reaches ``size`` (or ``POST /api/uploads/{id}/complete``) assembles the
chunks into one blob and links the file atomically (an overwrite keeps a version); 201 with the
file. ``DELETE`` cancels. The quota is checked at creation and at every chunk; abandoned uploads
expire (``[files] upload_expiry``).
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from tau.dav.put import UploadBody
from tau.dav.server import BoundedBody
from tau.files import blobrefs, uploadstore
from tau.files.admission import rest_quota_error, room
from tau.files.api import http_error, item, parse_path
from tau.files.davtree import _content_type
from tau.files.service_tree import FileTree
from tau.files.store import FilesError, Node
from tau.files.uploadstore import Upload
from tau.http.errors import HttpError
from tau.http.gate import BodyCap
from tau.http.router import Response, json_response, query_arg, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

PREFIX = "/api/uploads"
_RANGE = re.compile(r"^bytes\s+(\d{1,18})-(\d{1,18})/(\d{1,18}|\*)$")
MAX_SIZE = 1 << 50


def _state(up: Upload) -> Response:
    return json_response({"id": up.id, "url": f"{PREFIX}/{up.id}", "offset": up.committed, "size": up.size},
                         headers={"Upload-Offset": str(up.committed), "Upload-Length": str(up.size),
                                  "Cache-Control": "no-store"})


def chunk_start(request: Any) -> int:
    """Where a chunk starts: ``Content-Range`` (RFC 9110 §14.4 form) or ``?offset=``."""
    header = (request.getHeader(b"content-range") or b"").decode("latin-1").strip()
    if header:
        m = _RANGE.match(header)
        if m is None:
            raise HttpError(400, "invalid_range", "Content-Range must be bytes START-END/SIZE")
        return int(m.group(1))
    offset = query_arg(request, "offset")
    if offset is None or not offset.isdigit() or len(offset) > 18:
        raise HttpError(400, "invalid_offset", "give Content-Range or ?offset=")
    return int(offset)


class UploadsApi:
    def __init__(self, registry: Registry, tree: FileTree) -> None:
        self.registry, self.tree = registry, tree

    async def _get(self, user: Any, upload_id: str) -> Upload:
        up = await self.tree.run("files_upload_get", uploadstore.get, user.id, upload_id) \
            if len(upload_id) <= 64 else None
        if up is None:
            raise HttpError(404, "not_found", "no such upload")
        return up

    async def _target(self, user: Any, path: list[str], need: int) -> Any:
        """The lookup of an upload's target: writable parent, not a folder, ``need`` bytes of room."""
        if not path:
            raise HttpError(400, "invalid_path", "path must name a file")
        info = await self.tree.lookup(user, path)
        if info.node is not None and info.node.is_folder:
            raise HttpError(409, "is_folder", "a folder with that name exists")
        if info.parent is None or not info.writable:
            raise HttpError(409 if info.writable else 403, "no_parent" if info.writable else "read_only",
                            "the parent folder does not exist" if info.writable else "read-only share")
        free = room(info)
        if free is not None and need > free:
            raise rest_quota_error()
        return info

    async def create(self, request: Any) -> Any:
        body = await read_json_object(request)
        path = parse_path(str(body.get("path", "")) if body.get("path") is not None else None)
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
            raise HttpError(400, "invalid_size", "size must be a byte count")
        await self._target(request.user, path, size)
        ctype = _content_type(path[-1], str(body.get("content_type") or "") or None)
        up = await self.tree.run("files_upload_create", uploadstore.create, request.user.id,
                                 secrets.token_urlsafe(24), path, size, ctype)
        response = _state(up)
        response.status = 201
        response.headers = {**(response.headers or {}), "Location": f"{PREFIX}/{up.id}"}
        return response

    async def status(self, request: Any, id: str) -> Any:
        return _state(await self._get(request.user, id))

    async def cancel(self, request: Any, id: str) -> Any:
        if not await self.tree.run("files_upload_cancel", uploadstore.cancel, self.tree.blobs.sync,
                                   request.user.id, id[:80]):
            raise HttpError(404, "not_found", "no such upload")
        return Response(b"", 204)

    async def chunk(self, request: Any, id: str) -> Any:
        body = request.content
        up = await self._get(request.user, id)
        start = chunk_start(request)
        if not hasattr(body, "finish") or start != up.committed:
            if hasattr(body, "abort"):
                await body.abort()
            raise HttpError(409, "offset_mismatch", f"the upload is at offset {up.committed}",
                            headers={"Upload-Offset": str(up.committed)}, extra={"offset": up.committed})
        if up.committed + body.size > up.size:
            await body.abort()
            raise HttpError(413, "too_large", "the chunk runs past the upload's declared size")
        await self._target(request.user, up.path, up.committed + body.size)
        if body.size == 0:
            await body.abort()
            return await self._complete(request.user, up) if up.committed == up.size else _state(up)
        info = await body.finish()
        try:
            offset = await self.tree.run("files_upload_part", uploadstore.add_part, self.tree.blobs.sync,
                                         request.user.id, up.id, start, info.key, info.size)
        except BaseException as exc:
            await self.tree.run("files_blob_cleanup", blobrefs.drop_if_unreferenced, self.tree.blobs.sync, info.key)
            if isinstance(exc, FilesError):
                raise http_error(exc)
            raise
        up = up._replace(committed=offset)
        if offset == up.size:
            return await self._complete(request.user, up)
        return _state(up)

    async def finish(self, request: Any, id: str) -> Any:
        up = await self._get(request.user, id)
        if up.committed != up.size:
            raise HttpError(409, "incomplete", f"{up.size - up.committed} bytes still missing",
                            headers={"Upload-Offset": str(up.committed)})
        return await self._complete(request.user, up)

    async def _complete(self, user: Any, up: Upload) -> Any:
        info = await self._target(user, up.path, up.size)
        keys = await self.tree.run("files_upload_parts", uploadstore.parts, up.id)
        key, assembled = await self._assemble(keys)
        try:
            node: Node = await self.tree.run("files_upload_done", uploadstore.complete, self.tree.blobs.sync, up.id,
                                             info.parent.id, up.path[-1], key, up.size, up.content_type,
                                             self.tree.default_quota, self.tree.versions_keep)
        except BaseException as exc:
            if assembled:
                await self.tree.run("files_blob_cleanup", blobrefs.drop_if_unreferenced, self.tree.blobs.sync, key)
            if isinstance(exc, FilesError):
                raise http_error(exc)
            raise
        return json_response(item(node, up.path), 201)

    async def _assemble(self, keys: list[str]) -> tuple[str, bool]:
        """One blob of the chunks in order, copied in ~1 MiB pieces; (key, whether it is new). A
        single chunk is the file's blob as it is; no chunk at all is the empty blob."""
        if len(keys) == 1:
            return keys[0], False
        writer = self.tree.blobs.writer()
        try:
            for key in keys:
                async for piece in self.tree.read(key):
                    await writer.write(piece)
            info = await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        return info.key, True


def _admission(tree: FileTree) -> Any:
    """A chunk may not run past the upload's declared size: the sink stops storing there."""

    async def admit(request: Any, user: Any, length: int | None) -> BodyCap | None:
        raw = (getattr(request.channel, "_path", b"") or b"").split(b"?", 1)[0].decode("latin-1")
        upload_id = raw.rstrip("/").rsplit("/", 1)[-1]
        up = await tree.run("files_upload_get", uploadstore.get, user.id, upload_id) if len(upload_id) <= 64 else None
        if up is None:
            return None  # the handler answers 404
        error = HttpError(413, "too_large", "the chunk runs past the upload's declared size")
        if length is not None and up.committed + length > up.size:
            raise error
        return BodyCap(up.size - up.committed, error)

    return admit


def register(registry: Registry, http: Any, tree: FileTree) -> None:
    api = UploadsApi(registry, tree)
    site = http.site
    site.add_body_sink(PREFIX, {"PUT"}, lambda request, length: UploadBody(request, length, tree.blobs.writer),
                       auth="bearer")
    site.add_body_admission(PREFIX, {"PUT"}, _admission(tree))
    site.set_body_limit(PREFIX, None)
    site.add_body_sink(PREFIX, {"POST", "GET", "HEAD", "DELETE"},
                       lambda request, length: BoundedBody(request, length, 64 * 1024))
    http.route("POST", PREFIX, api.create, scope="files")
    http.route("GET", PREFIX + "/{id}", api.status, scope="files")
    http.route("PUT", PREFIX + "/{id}", api.chunk, scope="files")
    http.route("DELETE", PREFIX + "/{id}", api.cancel, scope="files")
    http.route("POST", PREFIX + "/{id}/complete", api.finish, scope="files")
