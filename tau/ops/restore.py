"""``tau restore IN.tar.gz`` and ``tau backup --verify``: bring an archive back, or check it.

Restore reads the archive once, as a stream (members are never held whole): configuration
files first (written only where missing — except the installation secret, which must be the
archive's, since blobs are encrypted and app passwords keyed with it), then the rows of each
table into a freshly migrated, *empty* database of either engine, then the blobs, raw, into the
configured backend. Rows keep their ids, so IMAP UIDs/UIDVALIDITY, DAV ETags and every foreign
key come back unchanged; PostgreSQL identity sequences are moved past the restored ids.
This is also the documented SQLite → PostgreSQL migration path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tau.keys import open_private, private_dir
from tau.ops import dbdump
from tau.ops.backup import MANIFEST, META
from tau.storage.database import placeholders

BATCH = 500


class RestoreError(Exception):
    pass


class _Hashing:
    """Wraps a member's file object: hashes everything read through it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.sha = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        return data

    def readline(self) -> bytes:
        data = self.fh.readline()
        self.sha.update(data)
        return data

    def drain(self) -> str:
        while self.read(1024 * 1024):
            pass
        return self.sha.hexdigest()


def verify(path: str) -> dict[str, Any]:
    """Check every member against the manifest; raises RestoreError naming the first problem."""
    try:
        return _verify(path)
    except (tarfile.TarError, EOFError, zlib.error, json.JSONDecodeError, KeyError) as exc:
        raise RestoreError(f"{path}: unreadable archive ({exc.__class__.__name__}: {exc})") from exc


def _verify(path: str) -> dict[str, Any]:
    seen: dict[str, str] = {}
    manifest: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            fh = tar.extractfile(member)
            if fh is None:
                continue
            if member.name == MANIFEST:
                manifest = json.loads(fh.read())
                continue
            h = _Hashing(fh)
            if member.name == META:
                data = h.read()
                meta = json.loads(data)
            seen[member.name] = h.drain()
    if meta is None or manifest is None:
        # the manifest is the last member: a stream that ends before it was cut short (or is no tau backup)
        raise RestoreError(f"{path}: truncated or not a tau backup ({META if meta is None else MANIFEST} is missing)")
    expected: dict[str, str] = manifest["sha256"]
    for name, sha in expected.items():
        if name not in seen:
            raise RestoreError(f"{path}: member {name} is missing")
        if seen[name] != sha:
            raise RestoreError(f"{path}: member {name} is corrupt (SHA-256 mismatch)")
    extra = set(seen) - set(expected)
    if extra:
        raise RestoreError(f"{path}: unexpected member {sorted(extra)[0]}")
    return {"members": len(seen), "meta": meta}


def _write_file(path: Path, fh: IO[bytes], mode: int, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        return
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".restoring")
    with os.fdopen(open_private(tmp), "wb") as out:
        os.fchmod(out.fileno(), mode)
        while chunk := fh.read(1024 * 1024):
            out.write(chunk)
    os.replace(tmp, path)


def _rewrite_data_dir(text: str, data_dir: Path, old: str | None) -> str:
    """The archived tau.ini, pointing at the restore target's data dir (absolute paths too)."""
    if old and old != "/":
        text = text.replace(old.rstrip("/") + "/", str(data_dir) + "/")
    return re.sub(r"(?m)^(\s*data_dir\s*=).*$", lambda m: f"{m.group(1)} {data_dir}", text, count=1)


def _empty(cur: Any, engine: str) -> str | None:
    for table in dbdump.list_tables(cur, engine):
        cur.execute(f'SELECT 1 FROM "{table}" LIMIT 1')
        if cur.fetchone() is not None:
            return table
    return None


class Loader:
    """Inserts one table's JSON lines in batches, with foreign-key checks off for the session."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.conn = engine.connect()
        self.name = engine.name
        if self.name == "sqlite":
            self.conn.execute("PRAGMA foreign_keys=OFF")  # must precede BEGIN
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            cur = self.conn.cursor()
            try:
                cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
            except Exception:  # not a superuser: rows come in dependency and key order instead
                self.conn.rollback()
        self.cur = self.conn.cursor()

    def check_empty(self) -> None:
        table = _empty(self.cur, self.name)
        if table is not None:
            raise RestoreError(f"the target database is not empty (table {table} has rows); "
                               "restore needs an empty database")

    def load(self, fh: _Hashing) -> tuple[str, int]:
        header = json.loads(fh.readline())
        table, cols = header["table"], header["columns"]
        present = set(dbdump.columns(self.cur, self.name, table))
        keep = [i for i, c in enumerate(cols) if c in present]  # columns a newer schema dropped are skipped
        names = ", ".join(f'"{cols[i]}"' for i in keep)
        sql = f'INSERT INTO "{table}" ({names}) VALUES ({placeholders(len(keep))})'
        sql = self.engine.convert(sql)
        batch: list[tuple[Any, ...]] = []
        count = 0
        while line := fh.readline():
            row = json.loads(line)
            batch.append(tuple(self._value(dbdump.decode(row[i])) for i in keep))
            if len(batch) >= BATCH:
                self.cur.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        if batch:
            self.cur.executemany(sql, batch)
            count += len(batch)
        if self.name != "sqlite" and "id" in cols:
            self.cur.execute(f"SELECT pg_get_serial_sequence('\"{table}\"', 'id')")
            seq = self.cur.fetchone()[0]
            if seq:
                self.cur.execute(f'SELECT setval(%s, COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table}"',
                                 (seq,))
        return table, count

    def _value(self, value: Any) -> Any:
        if isinstance(value, bytes) and self.name != "sqlite":
            import psycopg2

            return psycopg2.Binary(value)
        return value

    def finish(self) -> None:
        if self.name == "sqlite":
            self.conn.execute("COMMIT")
            self.conn.execute("PRAGMA foreign_keys=ON")
            bad = self.conn.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise RestoreError(f"restored rows break foreign keys (first: {bad[0]})")
        else:
            self.conn.commit()
        self.conn.close()


def _check_meta(fh: _Hashing) -> dict[str, Any]:
    """The archive's meta.json, refused if its schema is newer than this code knows."""
    from tau.storage.migrate import code_version

    meta: dict[str, Any] = json.loads(fh.read())
    if meta.get("schema_version", 0) > code_version():
        raise RestoreError(f"archive schema {meta['schema_version']} is newer than this tau "
                           f"({code_version()}); upgrade tau first")
    return meta


def _write_config(target: Path, fh: _Hashing, old_data_dir: str | None) -> None:
    """The archived tau.ini, its data_dir pointed at the folder it is restored into."""
    private_dir(target.parent)
    with os.fdopen(open_private(target), "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o640)
        out.write(_rewrite_data_dir(fh.read().decode(), target.parent.resolve(), old_data_dir))


def _restore_file(config: Any, rel: str, fh: _Hashing) -> None:
    """A key or certificate, to where this config expects it (the secret replaces a fresh one)."""
    dest = {"secret": config.data_path(config.tau.secret_file),
            "tls/certificate": config.data_path(config.tls.certificate),
            "tls/private_key": config.data_path(config.tls.private_key)}.get(rel)
    if dest is None and rel.startswith("dkim/"):
        dest = config.data_path(config.dkim.keys_dir) / rel[len("dkim/"):]
    if dest is not None:
        _write_file(dest, fh, 0o600, overwrite=(rel == "secret"))


def _open_loader(config: Any) -> Loader:
    """A loader into the configured database, migrated to this code's schema and checked empty."""
    from tau.storage.database import SyncDatabase
    from tau.storage.engines import create_engine
    from tau.storage.migrate import migrate

    engine = create_engine(config.database_url)
    if engine.name == "sqlite" and engine.path != ":memory:":
        private_dir(Path(engine.path).parent)
        if not Path(engine.path).exists():  # password hashes and mail: 0600 before SQLite makes it 0644
            os.close(open_private(engine.path))
    db = SyncDatabase(engine)
    migrate(db)
    db.close()
    loader = Loader(engine)
    loader.check_empty()
    return loader


def _restore_blob(backend: Any, key: str, fh: _Hashing) -> None:
    """One blob, unless the backend has it already (blobs are content-addressed)."""
    if backend.exists(key):
        return
    upload = backend.new_upload()
    try:
        while chunk := fh.read(1024 * 1024):
            upload.write(chunk)
        upload.commit(key)
    except BaseException:
        upload.abort()
        raise


def restore(path: str, config_path: str, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Restore the archive at ``path`` for the config at ``config_path`` (written from the archive if
    missing, with ``data_dir`` set to its folder). Returns a summary."""
    from tau.blobs.factory import create_backend
    from tau.config import load_config

    summary: dict[str, Any] = {"tables": {}, "blobs": 0}
    expected: dict[str, str] = {}
    seen: dict[str, str] = {}
    config = loader = backend = None
    target = Path(config_path)
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            raw = tar.extractfile(member)
            if raw is None:
                continue
            name = member.name
            if name == MANIFEST:
                expected = json.loads(raw.read())["sha256"]
                continue
            fh = _Hashing(raw)
            if name == META:
                summary["meta"] = _check_meta(fh)
            elif name == "files/tau.ini":
                if not target.exists():
                    _write_config(target, fh, summary.get("meta", {}).get("data_dir"))
                config = load_config(str(target))
            elif name.startswith("files/"):
                if config is None:
                    config = load_config(str(target))
                _restore_file(config, name[len("files/"):], fh)
            elif name.startswith("db/"):
                if loader is None:
                    assert config is not None, "archive lists the database before the configuration"
                    loader = _open_loader(config)
                table, count = loader.load(fh)
                summary["tables"][table] = count
                log(f"table {table}: {count} rows")
            elif name.startswith("blobs/"):
                if loader is not None:
                    loader.finish()
                    loader = None
                if backend is None:
                    assert config is not None
                    backend = create_backend(config)
                _restore_blob(backend, name[len("blobs/"):], fh)
                summary["blobs"] += 1
            seen[name] = fh.drain()
    if loader is not None:
        loader.finish()
    if config is not None and config.blobs.backend == "local":   # the daemon's blob folder, even if empty
        private_dir(config.data_path(config.blobs.path))
    if not expected:
        raise RestoreError(f"{path}: archive has no manifest (truncated?)")
    bad = [n for n, sha in expected.items() if seen.get(n) != sha]
    if bad:
        raise RestoreError(f"{path}: member {bad[0]} is missing or corrupt; the restore is incomplete")
    return summary
