"""S3 backend (minio SDK): one object per blob, ranged GETs, streaming multipart uploads.

Objects are named ``PREFIX/ab/<key>``. Small uploads (under one part) are buffered and sent
with one PUT to their final name once the content address is known. Larger ones stream as a
multipart upload to ``PREFIX/tmp/<uuid>`` — each ``part_size`` of ciphertext is sent as it
fills, so memory stays at one part — and ``commit`` copies the object server-side to its final
name (copy for up to 5 GiB, multipart compose above) and removes the temporary object. A
dropped or aborted upload aborts its multipart upload. Deduplication: an existing final object
wins and the new copy is discarded, as on local disk.
"""

from __future__ import annotations

import io
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

from tau.blobs.base import KEY_RE, BlobBackend, BlobNotFound, BlobStoreUnavailable, Upload, validate_key

PART_SIZE = 16 * 1024 * 1024  # S3 parts must be >= 5 MiB except the last
COPY_LIMIT = 5 * 1024**3
READ_BLOCK = 256 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound", "NoSuchUpload"}


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "code", None) in _MISSING or getattr(getattr(exc, "_response", None), "status", 0) == 404


class _Multipart:
    """The server-side state of a large upload; abort() is idempotent (also the finalizer)."""

    def __init__(self, client: Any, bucket: str, name: str) -> None:
        self.client, self.bucket, self.name = client, bucket, name
        self.upload_id: str | None = client._create_multipart_upload(bucket, name, {})
        self.parts: list[Any] = []
        self.completed = False

    def abort(self) -> None:
        try:
            if self.upload_id is not None and not self.completed:
                self.client._abort_multipart_upload(self.bucket, self.name, self.upload_id)
            elif self.completed:
                self.client.remove_object(self.bucket, self.name)
        except Exception:
            pass  # best effort: a lifecycle rule on PREFIX/tmp/ sweeps what is left
        self.upload_id = None
        self.completed = False


class S3Upload(Upload):
    def __init__(self, backend: S3Backend) -> None:
        self._b = backend
        self._buf = bytearray()
        self._size = 0
        self._mp: _Multipart | None = None
        self._cleanup: Any = None
        self._open = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._open:
            raise ValueError("upload is closed")
        try:
            self._buf += data
            self._size += len(data)
            while len(self._buf) >= self._b.part_size:
                self._send_part(bytes(self._buf[:self._b.part_size]))
                del self._buf[:self._b.part_size]
        except BaseException:
            self.abort()
            raise

    def _send_part(self, data: bytes) -> None:
        from minio.datatypes import Part

        if self._mp is None:
            self._mp = _Multipart(self._b.client, self._b.bucket, self._b.tmp_name())
            self._cleanup = weakref.finalize(self, self._mp.abort)
        number = len(self._mp.parts) + 1
        assert self._mp.upload_id is not None
        etag = self._b.client._upload_part(self._b.bucket, self._mp.name, data, None, self._mp.upload_id, number)
        self._mp.parts.append(Part(number, etag))

    def commit(self, key: str) -> bool:
        if not self._open:
            raise ValueError("upload is closed")
        final = self._b.object_name(key)
        client, bucket = self._b.client, self._b.bucket
        try:
            if self._b.exists(key):
                self.abort()
                return False
            if self._mp is None:
                client.put_object(bucket, final, io.BytesIO(bytes(self._buf)), len(self._buf))
            else:
                if self._buf:
                    self._send_part(bytes(self._buf))
                assert self._mp.upload_id is not None
                client._complete_multipart_upload(bucket, self._mp.name, self._mp.upload_id, self._mp.parts)
                self._mp.completed = True
                self._publish(self._mp.name, final)
                self._mp.abort()  # removes the temporary object
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._buf = bytearray()
        if self._cleanup is not None:
            self._cleanup.detach()
        return True

    def _publish(self, tmp: str, final: str) -> None:
        from minio.commonconfig import ComposeSource, CopySource

        client, bucket = self._b.client, self._b.bucket
        if self._size <= COPY_LIMIT:
            client.copy_object(bucket, final, CopySource(bucket, tmp))
        else:
            client.compose_object(bucket, final, [ComposeSource(bucket, tmp)])

    def abort(self) -> None:
        self._open = False
        self._buf = bytearray()
        if self._cleanup is not None:
            self._cleanup()


class S3Backend(BlobBackend):
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = True,
                 prefix: str = "blobs", part_size: int = PART_SIZE, region: str | None = None,
                 create_bucket: bool = True) -> None:
        from minio import Minio

        self.client = Minio(endpoint, access_key=access_key or None, secret_key=secret_key or None,
                            secure=secure, region=region)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = max(5 * 1024 * 1024, part_size)
        self.endpoint = endpoint
        if create_bucket:
            try:
                if not self.client.bucket_exists(bucket):
                    self.client.make_bucket(bucket)
            except Exception:
                pass  # check() reports it with a reason

    def object_name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key[:2]}/{key}"

    def tmp_name(self) -> str:
        return f"{self.prefix}/tmp/{uuid.uuid4().hex}"

    def new_upload(self) -> S3Upload:
        return S3Upload(self)

    def read_range(self, key: str, offset: int, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length}")
        return self._read(self.object_name(key), key, offset, length)

    def _read(self, name: str, key: str, offset: int, length: int | None) -> Iterator[bytes]:
        from minio.error import S3Error

        if length == 0:
            self.size(key)  # still report a missing blob
            return
        try:
            response = self.client.get_object(self.bucket, name, offset=offset, length=length or 0)
        except S3Error as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            if exc.code == "InvalidRange":
                return
            raise
        try:
            yield from response.stream(READ_BLOCK)
        finally:
            response.close()
            response.release_conn()

    def size(self, key: str) -> int:
        from minio.error import S3Error

        try:
            return int(self.client.stat_object(self.bucket, self.object_name(key)).size or 0)
        except S3Error as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
            return True
        except BlobNotFound:
            return False

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self.object_name(key))

    def list_older(self, cutoff: float) -> Iterator[str]:
        """Objects ``prefix/ab/<key>`` last modified before ``cutoff`` (``prefix/tmp/`` is skipped)."""
        for obj in self.client.list_objects(self.bucket, prefix=f"{self.prefix}/", recursive=True):
            parts = (obj.object_name or "")[len(self.prefix) + 1:].split("/")
            modified = obj.last_modified.timestamp() if obj.last_modified is not None else cutoff
            if len(parts) == 2 and KEY_RE.fullmatch(parts[1]) and parts[0] == parts[1][:2] and modified < cutoff:
                yield parts[1]

    def check(self) -> None:
        try:
            if not self.client.bucket_exists(self.bucket):
                raise BlobStoreUnavailable(f"bucket {self.bucket!r} does not exist on {self.endpoint}")
        except BlobStoreUnavailable:
            raise
        except Exception as exc:
            raise BlobStoreUnavailable(f"S3 endpoint {self.endpoint} unreachable: {exc}") from exc
