"""Privacy hooks: how each domain hands out (GDPR Art. 15/20) and erases (Art. 17) a user's data.

A domain that stores anything about a user has a ``privacy`` module next to its store with a
``HOOK = PrivacyHook(...)``; ``tau.ops.privacy`` lists those modules and only orchestrates. The
hooks belong to the domain, not to its service plugin: a user's mail is still there (and still
theirs to export or erase) when the mail plugin is disabled.

- ``export(ctx)``: write the domain's part of the archive (``ctx.add_bytes`` / ``ctx.add_file``)
  and count it in ``ctx.counts``;
- ``purge(txn, user)``: inside the one purge transaction, before the account row goes, delete what
  ``ON DELETE`` would not and drop blob references; returns what ``collect`` needs afterwards;
- ``collect(ctx, state)``: after commit, delete the blobs nothing references any more; returns
  counts for the report.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from tau.auth.accounts import User

_SAFE = re.compile(r"[^A-Za-z0-9._@+ -]+")


def safe_name(name: str) -> str:
    """A path component for the archive (no separators, no leading dots)."""
    return _SAFE.sub("_", name).strip(". ") or "_"


class BlobAccess:
    """Blocking blob stores for the CLI (same backend, each domain its own address key)."""

    def __init__(self, config: Any) -> None:
        from tau.blobs.factory import create_backend
        from tau.keys import Keys, load_secret

        self.keys = Keys(load_secret(config.data_path(config.tau.secret_file)))
        self.backend = create_backend(config)

    def store(self, address_key: bytes) -> Any:
        from tau.blobs.store import SyncBlobStore

        return SyncBlobStore(self.backend, self.keys.blob_master_key, address_key)


@dataclass
class ExportContext:
    """One archive being written: the user, a blocking database and the tar stream."""

    db: Any
    user: User
    tar: tarfile.TarFile
    blobs: BlobAccess
    now: int
    counts: dict[str, int] = field(default_factory=dict)
    #: ``tau.atrest.keyring.Keyring``: what is sealed at rest is exported in plaintext
    keyring: Any = None

    def add_file(self, name: str, fh: IO[bytes], mtime: int | None = None) -> None:
        size = fh.seek(0, 2)
        fh.seek(0)
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, self.now if mtime is None else mtime, 0o600
        self.tar.addfile(info, fh)

    def add_bytes(self, name: str, data: bytes, mtime: int | None = None) -> None:
        self.add_file(name, io.BytesIO(data), mtime)


@dataclass
class PurgeContext:
    """After the purge transaction: the database and the blob stores, to collect orphans."""

    db: Any
    blobs: BlobAccess
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PrivacyHook:
    name: str
    export: Callable[[ExportContext], None] | None = None
    purge: Callable[[Any, User], Any] | None = None
    collect: Callable[[PurgeContext, Any], None] | None = None
