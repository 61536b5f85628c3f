"""REST ``/api/files`` (INTERFACE.md): upload, list, download with Range, delete, move/rename.

The same tree WebDAV serves: paths are those of ``/dav/files/USER/``, ids are node ids. Uploads
stream (raw body with ``?path=``, or multipart field ``file``) through the same body sink
machinery as DAV PUT; a path under a DAV lock is refused with 423 (REST cannot submit tokens).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.web.server import NOT_DONE_YET

from tau.dav import paths
from tau.dav.conditions import http_date
from tau.dav.errors import DavError
from tau.dav.get import finish_empty, parse_range, stream_body
from tau.dav.server import BoundedBody
from tau.files import lookup, store
from tau.files.admission import rest_admission
from tau.files.service_tree import FileTree
from tau.files.store import FilesError, Node
from tau.files.uploads import upload_factory
from tau.http import usercontent
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_LIMIT = 1000


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def item(node: Node, path: list[str]) -> dict[str, Any]:
    return {"id": str(node.id), "name": path[-1] if path else "", "path": "/" + "/".join(path),
            "type": "folder" if node.is_folder else "file", "size": node.size,
            "modified": rfc3339(node.modified_at), "etag": node.etag}


def http_error(exc: FilesError | DavError) -> HttpError:
    if isinstance(exc, DavError):
        code = {400: "invalid_path", 403: "forbidden", 404: "not_found", 416: "range_not_satisfiable"}
        return HttpError(exc.status, code.get(exc.status, "error"), exc.message, headers=exc.headers)
    return HttpError(exc.status, exc.code, exc.message)


def parse_path(raw: str | None) -> list[str]:
    """``/a/b`` (plain text, not percent-encoded) → validated segments."""
    if raw is None:
        raise HttpError(400, "invalid_path", "path is required")
    try:
        return [paths.clean_segment(s) for s in raw.split("/") if s]
    except DavError as exc:
        raise http_error(exc)


class FilesApi:
    def __init__(self, registry: Registry, tree: FileTree) -> None:
        self.registry, self.tree = registry, tree

    async def _locked(self, canonical: list[str], user: Any, depth: bool = False) -> None:
        """423 when a WebDAV lock protects the path (REST clients cannot submit lock tokens).

        One query against the shared lock store, so a lock taken on another node counts too. The
        owner of the tree is not held off by a lock someone else took through a share: her write
        breaks it, as her DAV writes do (``tau.dav.context.DavContext.overrides``).
        """
        dav = self.registry.files_dav
        key = tuple(canonical)
        found = await dav.lock_store.load([key], [key] if depth else [])
        hits = [lock for lock in found if lock.covers(key) or lock.covers(key[:-1]) or (depth and lock.within(key))]
        me = str(getattr(user, "address", "")).lower()
        if any(not (key[0].lower() == me and lock.principal.lower() != me) for lock in hits):
            raise HttpError(423, "locked", "the file is locked by a WebDAV client")
        for lock in hits:
            await dav.lock_store.remove(lock.token)

    async def _locked_node(self, node: Node, user: Any, depth: bool = True) -> None:
        await self._locked(await self.tree.run("files_canonical", lookup.canonical, node), user, depth)

    async def _locate(self, user: Any, file_id: str) -> tuple[Node, list[str], bool]:
        if not file_id.isdigit():
            raise HttpError(404, "not_found", "no such file")
        found = await self.tree.run("files_locate", lookup.locate, user.id, int(file_id))
        if found is None:
            raise HttpError(404, "not_found", "no such file")
        return found  # type: ignore[no-any-return]

    async def upload(self, request: Any) -> Any:
        body = request.content
        segments = parse_path(query_arg(request, "path"))
        if query_arg(request, "type") == "folder":
            return await self._mkdir(request.user, segments)
        if not hasattr(body, "finish"):
            raise HttpError(400, "invalid_body", "upload body missing")
        if getattr(body, "malformed", False) or (hasattr(body, "file_seen") and not body.file_seen):
            raise HttpError(400, "invalid_multipart", "multipart body needs a 'file' field")
        info = await self.tree.lookup(request.user, segments)
        filename = getattr(body, "filename", None)
        if filename and (not segments or (info.node is not None and info.node.is_folder)):
            segments = segments + [parse_path(filename.replace("\\", "/").rsplit("/", 1)[-1])[0]]
            info = await self.tree.lookup(request.user, segments)
        if not segments:
            raise HttpError(400, "invalid_path", "path must name a file")
        if info.node is not None and info.node.is_folder:
            raise HttpError(409, "is_folder", "a folder with that name exists")
        if info.parent is None or not info.writable:
            raise HttpError(409 if info.writable else 403, "no_parent" if info.writable else "read_only",
                            "the parent folder does not exist" if info.writable else "read-only share")
        await self._locked(info.canonical, request.user)
        old = info.node.size if info.node is not None else 0
        if info.limit and info.used - old + body.size > info.limit:
            await body.abort()
            raise HttpError(507, "quota_exceeded", "storage quota exceeded")
        from tau.files.davtree import _content_type

        ctype = _content_type(segments[-1], (request.getHeader(b"content-type") or b"").decode("latin-1")
                              if not hasattr(body, "file_seen") else None)
        try:
            node = await self.tree.store_upload(body, info.parent.id, segments[-1], ctype)
        except FilesError as exc:
            raise http_error(exc)
        return json_response(item(node, segments), 201)

    async def _mkdir(self, user: Any, segments: list[str]) -> Any:
        info = await self.tree.lookup(user, segments)
        if info.node is not None:
            raise HttpError(409, "exists", "a file or folder with that name exists")
        if info.parent is None or not info.writable or not segments:
            raise HttpError(409, "no_parent", "the parent folder does not exist or is read-only")
        try:
            node = await self.tree.run("files_mkdir", store.make_folder, info.parent, segments[-1])
        except FilesError as exc:
            raise http_error(exc)
        return json_response(item(node, segments), 201)

    async def listing(self, request: Any) -> Any:
        segments = parse_path(query_arg(request, "path", "/"))
        try:
            limit = min(MAX_LIMIT, max(1, int(query_arg(request, "limit", "100") or 100)))
        except ValueError:
            raise HttpError(400, "invalid_query", "limit must be a number")
        cursor = query_arg(request, "cursor")
        after = None
        if cursor:
            try:
                after = base64.urlsafe_b64decode(cursor.encode() + b"==").decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise HttpError(400, "invalid_cursor", "bad cursor")
        info = await self.tree.lookup(request.user, segments)
        if info.kind == "shared_root":
            items = [item(n, [lookup.SHARED, name]) for name, _, n, _ in info.shares]
            return json_response({"items": items, "next_cursor": None})
        if info.node is None:
            raise HttpError(404, "not_found", "no such file or folder")
        if not info.node.is_folder:
            return json_response({"items": [item(info.node, segments)], "next_cursor": None})
        nodes = await self.tree.run("files_page", store.children, info.node.id, after, limit + 1)
        items = [item(n, segments + [n.name]) for n in nodes[:limit]]
        if not segments and info.shares and after is None:
            items.append({"id": "shared", "name": lookup.SHARED, "path": "/" + lookup.SHARED, "type": "folder",
                          "size": 0, "modified": rfc3339(info.node.modified_at), "etag": ""})
        next_cursor = None
        if len(nodes) > limit:
            next_cursor = base64.urlsafe_b64encode(nodes[limit - 1].name.encode()).decode().rstrip("=")
        return json_response({"items": items, "next_cursor": next_cursor})

    async def download(self, request: Any, id: str) -> Any:
        node, path, _ = await self._locate(request.user, id)
        if query_arg(request, "meta") == "1" or node.is_folder:
            return json_response(item(node, path))
        await send_file(self.tree, request, node)
        return NOT_DONE_YET

    async def delete(self, request: Any, id: str) -> Any:
        node, path, writable = await self._locate(request.user, id)
        if not writable or node.parent_id is None or path[:1] == [lookup.SHARED] and len(path) == 2:
            raise HttpError(403, "forbidden", "cannot delete this")
        await self._locked_node(node, request.user)
        try:
            await self.tree.delete(node.id)
        except FilesError as exc:
            raise http_error(exc)
        return Response(b"", 204)

    async def patch(self, request: Any, id: str) -> Any:
        node, path, writable = await self._locate(request.user, id)
        body = await read_json_object(request)
        if "path" in body:
            target = parse_path(str(body["path"]))
        elif "name" in body:
            target = path[:-1] + parse_path(str(body["name"]))[-1:]
        else:
            raise HttpError(400, "invalid_request", "give path or name")
        if not writable or not target or node.parent_id is None:
            raise HttpError(403, "forbidden", "cannot move this")
        info = await self.tree.lookup(request.user, target)
        if info.parent is None or not info.writable:
            raise HttpError(409, "no_parent", "the destination folder does not exist or is read-only")
        if info.node is not None and body.get("overwrite") is not True:
            raise HttpError(409, "exists", "the destination exists")
        await self._locked_node(node, request.user)
        await self._locked(info.canonical, request.user, depth=True)
        try:
            moved, _ = await self.tree.run("files_move", store.transfer, self.tree.blobs.sync, node.id,
                                           info.parent.id, target[-1], True, True,
                                           info.node.id if info.node else None, self.tree.default_quota)
        except FilesError as exc:
            raise http_error(exc)
        return json_response(item(moved, target))


async def send_file(tree: FileTree, request: Any, node: Node, filename: str | None = None) -> None:
    """Stream a file with Range support (RFC 7233) to a REST or share request."""
    try:
        wanted = parse_range((request.getHeader(b"range") or b"").decode("latin-1") or None, node.size)
    except DavError as exc:
        raise http_error(exc)
    start, end = wanted if wanted is not None else (0, node.size)
    request.setResponseCode(206 if wanted is not None else 200)
    for name, value in {"Accept-Ranges": "bytes", "ETag": node.etag,
                        "Last-Modified": http_date(node.modified_at)}.items():
        request.setHeader(name.encode(), value.encode("latin-1"))
    # user content: attachment unless a safe inline type, nosniff, sandbox CSP (tau.http.usercontent)
    usercontent.apply(request, usercontent.user_content_headers(node.content_type, filename or node.name))
    request.setHeader(b"content-length", str(end - start).encode())
    if wanted is not None:
        request.setHeader(b"content-range", f"bytes {start}-{end - 1}/{node.size}".encode())
    if request.method == b"HEAD" or end == start:
        finish_empty(request)  # the client may have gone while the file was looked up
        return
    chunks = tree.read(node.blob_key, start, end) if node.blob_key else _nothing()
    await stream_body(request, chunks)  # type: ignore[arg-type]


async def _nothing() -> Any:
    return
    yield b""  # pragma: no cover


def register(registry: Registry, http: Any, tree: FileTree) -> FilesApi:
    api = FilesApi(registry, tree)
    # authenticated (with the route's scope) and admitted (quota) when the headers arrive
    http.site.add_body_sink("/api/files", {"POST"}, upload_factory(tree.blobs.writer), auth="bearer")
    http.site.add_body_admission("/api/files", {"POST"}, rest_admission(tree, parse_path, query_arg))
    http.site.set_body_limit("/api/files", None)
    http.site.add_body_sink("/api/files", {"PATCH", "PUT", "DELETE", "GET", "HEAD"},
                            lambda request, length: BoundedBody(request, length, 64 * 1024))
    http.route("POST", "/api/files", api.upload, scope="files")
    http.route("GET", "/api/files", api.listing, scope="files")
    http.route("GET", "/api/files/{id}", api.download, scope="files")
    http.route("DELETE", "/api/files/{id}", api.delete, scope="files")
    http.route("PATCH", "/api/files/{id}", api.patch, scope="files")
    return api
