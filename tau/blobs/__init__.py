"""Blob storage: message bodies, files and attachments, encrypted at rest and content-addressed.

``BlobStore`` (async, for the daemon) and ``SyncBlobStore`` (blocking, for tools) sit on a
``BlobBackend``; ``LocalBackend`` keeps blobs on local disk. Metadata (which message or file
uses which key, reference counts) lives in the database, not here.
"""

from tau.blobs.base import (
    BlobBackend,
    BlobCorrupt,
    BlobError,
    BlobNotFound,
    BlobStoreUnavailable,
    InvalidBlobKey,
    Upload,
    validate_key,
)
from tau.blobs.crypto import (
    CHUNK,
    ChunkEncryptor,
    DecryptingReader,
    ciphertext_range,
    ciphertext_size,
    plaintext_size,
)
from tau.blobs.local import LocalBackend
from tau.blobs.store import (
    BlobInfo,
    BlobReader,
    BlobStore,
    BlobWriter,
    SyncBlobStore,
    SyncBlobWriter,
)

__all__ = [
    "CHUNK", "BlobBackend", "BlobCorrupt", "BlobError", "BlobInfo", "BlobNotFound", "BlobReader",
    "BlobStore", "BlobStoreUnavailable", "BlobWriter", "ChunkEncryptor", "DecryptingReader",
    "InvalidBlobKey", "LocalBackend", "SyncBlobStore", "SyncBlobWriter", "Upload", "ciphertext_range",
    "ciphertext_size", "plaintext_size", "validate_key",
]
