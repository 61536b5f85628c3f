"""Build the daemon's blob store from ``[blobs]``: ``local`` (default) or ``s3`` (minio SDK)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.blobs.local import LocalBackend
from tau.blobs.store import BlobStore

if TYPE_CHECKING:
    from tau.registry import Registry


def create_backend(config: Any) -> Any:
    backend = config.blobs.backend
    if backend == "local":
        return LocalBackend(config.data_path(config.blobs.path), pack_threshold=config.blobs.pack_threshold)
    if backend == "s3":
        try:
            import minio  # noqa: F401

            from tau.blobs.s3 import S3Backend
        except ImportError:
            raise config.error("blobs", "backend", "backend s3 needs the minio package (pip install 'tau[s3]')")
        blobs = config.blobs
        return S3Backend(blobs.s3_endpoint, blobs.s3_access_key, blobs.s3_secret_key, blobs.s3_bucket,
                         secure=blobs.s3_secure)
    raise config.error("blobs", "backend", f"backend {backend!r} is not available in this version of tau")


def sync_with_commits(backend: Any, db: Any) -> None:
    """In the daemon every blob is acknowledged only after a database commit that references
    it, so packed blobs are synced by the write transactions rather than one by one: before one
    begins, everything appended so far (one fsync for all, outside the transaction's locks); just
    before it commits, whatever its own thread appended or found unsynced meanwhile."""
    if isinstance(backend, LocalBackend) and backend.pack_threshold > 0:
        backend.packs.defer_sync = True
        db.before_begin.append(backend.packs.sync_pending)
        db.before_commit.append(backend.packs.sync_seen)


def create_blob_store(registry: Registry) -> BlobStore:
    keys = registry.keys
    return BlobStore(registry.blob_backend, keys.blob_master_key, keys.blob_address_key, registry.run_in_thread)
