"""The file space as the services see it: a database, a blob store and the quota default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer

from tau.blobs import BlobStore
from tau.files import blobrefs, lookup, store, trashstore
from tau.files.lookup import Lookup
from tau.files.store import FilesError, Node

if TYPE_CHECKING:
    from tau.registry import Registry


def files_blob_store(registry: Registry) -> BlobStore:
    """The blob store for file contents.

    Same backend and master key as everything else, but its own address key: file blobs and
    mail blobs never share a content address, so mail's reference counting (``mail_blobs``)
    and ours (``file_blobs``) can each delete their blobs without knowing about the other.
    """
    keys = registry.keys
    return BlobStore(registry.blob_backend, keys.blob_master_key, keys.derive("files:blob-address"),
                     registry.run_in_thread)


T = TypeVar("T")
READ_BATCH = 1024 * 1024


class FileTree:
    def __init__(self, registry: Registry, blobs: BlobStore) -> None:
        self.registry = registry
        self.db = registry.db
        self.blobs = blobs
        self.default_quota: int = registry.config.limits.quota_bytes
        files = registry.config.files
        self.trash_days, self.versions_keep = files.trash_days, files.versions_keep

    def run(self, name: str, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        return self.db.run(name, fn, *args)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Plaintext ``[start, end)`` in ~1 MiB pieces: one thread job reads and decrypts 16 chunks."""
        reader = self.blobs.stream(key, start, end, READ_BATCH)
        try:
            while piece := await reader.read_chunk():
                yield piece
        finally:
            await reader.aclose()

    async def lookup(self, user: Any, rest: list[str]) -> Lookup:
        result: Lookup = await self.run("files_resolve", lookup.resolve, user.id, user.address, rest,
                                        self.default_quota)
        return result

    async def store_upload(self, body: Any, parent_id: int, name: str, content_type: str,
                           if_etag: str | None = None) -> Node:
        """Seal a streamed body and link it at ``parent/name``; no trace is left on failure."""
        info = await body.finish()
        try:
            node, _ = await self.db.run_grouped("files_put", store.put_file, self.blobs.sync, parent_id, name,
                                                info.key, info.size, content_type, self.default_quota, if_etag,
                                                self.versions_keep)
        except BaseException as exc:
            await self.run("files_blob_cleanup", blobrefs.drop_if_unreferenced, self.blobs.sync, info.key)
            if isinstance(exc, blobrefs.BlobMissing):
                raise FilesError(503, "retry", "storage changed during the upload; try again")
            raise
        return node

    async def delete(self, node_id: int) -> None:
        """Delete a file or folder as users do: into the trash (``[files] trash_days`` 0: for good)."""
        if self.trash_days > 0:
            await self.run("files_trash", trashstore.trash_node, node_id)
        else:
            await self.run("files_delete", store.delete_node, self.blobs.sync, node_id)
