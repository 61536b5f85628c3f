"""``tau backup OUT.tar.gz``: one consistent, streamed archive of a running installation.

Consistency: every table is read inside one snapshot — a REPEATABLE READ READ ONLY transaction
on PostgreSQL, one read transaction on SQLite (WAL readers see the database as of their first
read) — and only the blobs that snapshot references are archived, read afterwards from the blob
backend as stored (still encrypted: a backup never decrypts anything). Blobs are immutable and
content-addressed, so a blob referenced by the snapshot has these exact bytes.

Memory stays bounded: rows stream from a server-side cursor into a spooled temporary file per
table, blobs stream chunk by chunk into the gzip'd tar (opened in stream mode). The archive is
written to ``OUT.partial`` and renamed when complete. ``manifest.json``, the last member, holds
the SHA-256 of every other member (``tau backup --verify`` / ``tau restore`` check it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from tau.keys import open_private
from tau.ops import dbdump

FORMAT = 1
META = "tau-backup.json"
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024


class HashingReader(io.RawIOBase):
    """A file object over an iterator of chunks that hashes what it hands out."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        self.sha.update(out)
        return out


class ArchiveWriter:
    """Adds members to a streamed tar and remembers each member's SHA-256 for the manifest."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.hashes: dict[str, str] = {}
        self.now = int(time.time())

    def _info(self, name: str, size: int, mode: int = 0o600) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, mode, self.now
        return info

    def add_bytes(self, name: str, data: bytes, mode: int = 0o600) -> None:
        self.tar.addfile(self._info(name, len(data), mode), io.BytesIO(data))
        self.hashes[name] = hashlib.sha256(data).hexdigest()

    def add_stream(self, name: str, size: int, chunks: Iterable[bytes]) -> None:
        reader = HashingReader(chunks)
        self.tar.addfile(self._info(name, size), reader)
        self.hashes[name] = reader.sha.hexdigest()

    def add_spooled(self, name: str, fh: IO[bytes], sha: str) -> None:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        self.tar.addfile(self._info(name, size), fh)
        self.hashes[name] = sha


def config_files(config: Any) -> list[tuple[str, Path]]:
    """(archive name, path) of the configuration, secret, TLS material and DKIM keys that exist."""
    found = [("files/tau.ini", Path(config.path)),
             ("files/secret", config.data_path(config.tau.secret_file)),
             ("files/tls/certificate", config.data_path(config.tls.certificate)),
             ("files/tls/private_key", config.data_path(config.tls.private_key))]
    dkim = config.data_path(config.dkim.keys_dir)
    if dkim.is_dir():
        for path in sorted(dkim.rglob("*")):
            if path.is_file():
                found.append((f"files/dkim/{path.relative_to(dkim).as_posix()}", path))
    return [(name, path) for name, path in found if path.is_file()]


def open_snapshot(engine: Any) -> Any:
    """A connection inside one consistent read-only snapshot of the whole database."""
    conn = engine.connect()
    if engine.name == "sqlite":
        conn.execute("BEGIN")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the snapshot starts here
    else:
        conn.rollback()
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
    return conn


def dump_table(conn: Any, engine: str, table: str, spool_dir: str | None) -> tuple[IO[bytes], str, int]:
    """The table as JSON lines in a temporary file (RAM up to 8 MiB, then disk)."""
    cur = conn.cursor()
    cols = dbdump.columns(cur, engine, table)
    order = dbdump.primary_order(cur, engine, table, cols)
    cur.close()
    fh = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, dir=spool_dir)  # noqa: SIM115 - closed by caller
    sha = hashlib.sha256()

    def put(line: bytes) -> None:
        fh.write(line)
        sha.update(line)

    put(json.dumps({"table": table, "columns": cols}).encode() + b"\n")
    count = 0
    for row in dbdump.iter_rows(conn, engine, table, order, cols):
        put(json.dumps([dbdump.encode(v) for v in row], separators=(",", ":")).encode() + b"\n")
        count += 1
    return fh, sha.hexdigest(), count


def referenced_blobs(conn: Any, engine: str, tables: list[str]) -> Iterator[str]:
    """Distinct blob keys the snapshot references, streamed in key order."""
    cur = conn.cursor()
    parts = [f'SELECT "{c}" AS k FROM "{t}" WHERE "{c}" IS NOT NULL'
             for t in tables for c in dbdump.blob_columns(cur, engine, t)]
    cur.close()
    if not parts:
        return
    sql = " UNION ".join(parts) + " ORDER BY k"
    cur = conn.cursor() if engine == "sqlite" else conn.cursor(name="tau_backup_blobs")
    cur.execute(sql)
    try:
        while batch := cur.fetchmany(dbdump.FETCH):
            for (key,) in batch:
                yield key
    finally:
        cur.close()


def backup(config: Any, out: str, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Write the archive; returns a summary (tables with row counts, blob count, bytes)."""
    from tau.blobs.base import BlobNotFound
    from tau.blobs.factory import create_backend
    from tau.storage.engines import create_engine
    from tau.storage.migrate import code_version

    engine = create_engine(config.database_url)
    backend = create_backend(config)
    partial = out + ".partial"
    summary: dict[str, Any] = {"tables": {}, "blobs": 0, "missing_blobs": []}
    conn = open_snapshot(engine)
    try:
        cur = conn.cursor()
        tables = dbdump.dependency_order(cur, engine.name)
        cur.execute("SELECT MAX(version) FROM schema_version")
        schema = int(cur.fetchone()[0] or 0)
        cur.close()
        with os.fdopen(open_private(partial), "wb") as raw, \
                tarfile.open(fileobj=raw, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
            writer = ArchiveWriter(tar)
            meta = {"format": FORMAT, "created_at": writer.now, "engine": engine.name, "schema_version": schema,
                    "code_version": code_version(), "hostname": config.tau.hostname, "tables": tables,
                    "data_dir": str(config.data_dir)}
            writer.add_bytes(META, json.dumps(meta, indent=1).encode())
            for name, path in config_files(config):
                writer.add_bytes(name, path.read_bytes())
            for i, table in enumerate(tables):
                fh, sha, count = dump_table(conn, engine.name, table, os.path.dirname(os.path.abspath(out)))
                with fh:
                    writer.add_spooled(f"db/{i:03d}_{table}.jsonl", fh, sha)
                summary["tables"][table] = count
                log(f"table {table}: {count} rows")
            for key in referenced_blobs(conn, engine.name, tables):
                try:
                    size = backend.size(key)
                    writer.add_stream(f"blobs/{key}", size, backend.read_range(key, 0))
                except BlobNotFound:  # collected after the snapshot was taken: no longer referenced
                    summary["missing_blobs"].append(key)
                    continue
                summary["blobs"] += 1
            writer.add_bytes(MANIFEST, json.dumps({"format": FORMAT, "sha256": writer.hashes}, indent=0).encode())
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()
    os.replace(partial, out)
    summary["bytes"] = os.path.getsize(out)
    return summary
