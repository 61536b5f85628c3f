"""REST for the trash and file versions (issue 19): ``/api/trash`` and ``/api/files/{id}/versions``.

``GET /api/trash`` lists what was deleted (name, original path, size, deleted_at);
``POST /api/trash/{id}/restore`` puts it back (original folder, else the root; a taken name gets
" (restored)"); ``DELETE /api/trash/{id}`` and ``DELETE /api/trash`` purge. Versions:
``GET /api/files/{id}/versions``, ``GET .../versions/{v}`` (download, Range as for files) and
``POST .../versions/{v}/restore``. All under the ``files`` scope; cookie sessions need the CSRF
header for the state-changing ones (``tau.web.service`` lists the prefixes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import NOT_DONE_YET

from tau.files import trashstore, versions, versionstore
from tau.files.api import FilesApi, http_error, item, rfc3339, send_file
from tau.files.service_tree import FileTree
from tau.files.store import FilesError
from tau.files.trashstore import TrashItem
from tau.files.versionstore import Version
from tau.http.errors import HttpError
from tau.http.router import Response, json_response

if TYPE_CHECKING:
    from tau.registry import Registry


def trash_item(t: TrashItem) -> dict[str, Any]:
    return {"id": str(t.id), "name": t.name, "path": "/" + "/".join(t.path),
            "type": "folder" if t.kind == "folder" else "file", "size": t.size, "deleted_at": rfc3339(t.deleted_at)}


def version_item(v: Version) -> dict[str, Any]:
    return {"id": str(v.id), "size": v.size, "modified": rfc3339(v.modified_at), "content_type": v.content_type}


def _number(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise HttpError(404, "not_found", "no such item")
    return int(value)


class TrashApi:
    def __init__(self, registry: Registry, tree: FileTree, files: FilesApi) -> None:
        self.registry, self.tree, self.files = registry, tree, files

    async def _run(self, name: str, fn: Any, *args: Any) -> Any:
        try:
            return await self.tree.run(name, fn, *args)
        except FilesError as exc:
            raise http_error(exc)

    async def listing(self, request: Any) -> Any:
        items = await self.tree.run("files_trash_list", trashstore.listing, request.user.id)
        return json_response({"items": [trash_item(t) for t in items]})

    async def restore(self, request: Any, id: str) -> Any:
        node, path = await self._run("files_trash_restore", trashstore.restore, request.user.id, _number(id))
        return json_response(item(node, path))

    async def purge(self, request: Any, id: str) -> Any:
        await self._run("files_trash_purge", trashstore.purge, self.tree.blobs.sync, request.user.id, _number(id))
        return Response(b"", 204)

    async def empty(self, request: Any) -> Any:
        await self._run("files_trash_empty", trashstore.purge, self.tree.blobs.sync, request.user.id, None)
        return Response(b"", 204)

    async def _file(self, request: Any, id: str) -> Any:
        node, path, writable = await self.files._locate(request.user, id)
        if node.is_folder:
            raise HttpError(404, "not_found", "folders have no versions")
        return node, path, writable

    async def versions(self, request: Any, id: str) -> Any:
        node, _, _ = await self._file(request, id)
        found = await self.tree.run("files_versions", versionstore.listing, node.id)
        return json_response({"items": [version_item(v) for v in found]})

    async def version(self, request: Any, id: str, v: str) -> Any:
        node, _, _ = await self._file(request, id)
        found = await self.tree.run("files_version", versionstore.get, node.id, _number(v))
        if found is None:
            raise HttpError(404, "not_found", "no such version")
        old = node._replace(size=found.size, blob_key=found.blob_key, content_type=found.content_type,
                            modified_at=found.modified_at, etag=f'"v{found.id}-{found.blob_key[:16]}"')
        await send_file(self.tree, request, old)
        return NOT_DONE_YET

    async def restore_version(self, request: Any, id: str, v: str) -> Any:
        node, path, writable = await self._file(request, id)
        if not writable:
            raise HttpError(403, "read_only", "read-only share")
        await self.files._locked_node(node, request.user, depth=False)
        restored = await self._run("files_version_restore", versions.restore, self.tree.blobs.sync, node.id,
                                   _number(v), self.tree.default_quota, self.tree.versions_keep)
        return json_response(item(restored, path))


def register(registry: Registry, http: Any, tree: FileTree, files: FilesApi) -> None:
    api = TrashApi(registry, tree, files)
    http.route("GET", "/api/trash", api.listing, scope="files")
    http.route("DELETE", "/api/trash", api.empty, scope="files")
    http.route("POST", "/api/trash/{id}/restore", api.restore, scope="files")
    http.route("DELETE", "/api/trash/{id}", api.purge, scope="files")
    http.route("GET", "/api/files/{id}/versions", api.versions, scope="files")
    http.route("GET", "/api/files/{id}/versions/{v}", api.version, scope="files")
    http.route("POST", "/api/files/{id}/versions/{v}/restore", api.restore_version, scope="files")
