"""Backup and restore: identical rows and blobs, across engines, and a verified manifest."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from tau.auth import accounts
from tau.config import load_config
from tau.ops import dbdump
from tau.ops.backup import backup, open_snapshot
from tau.ops.restore import RestoreError, restore, verify
from tau.storage.engines import create_engine
from tests.support.databases import sqlite_url
from tests.support.harness import add_user, resolve, write_config

RAW = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: backup me\r\n"
       b"Message-ID: <b1@example.test>\r\n\r\nhello\r\n")


def fill(reg: Any) -> None:
    """Accounts, aliases and mail (blobs, index rows, UIDs); files are covered end to end."""
    from tau.mail.store.service import MailStore

    add_user(reg, "alice@example.test", fast_hash=True)
    add_user(reg, "bob@example.test", fast_hash=True, is_admin=True)
    reg.db.sync.run("alias", accounts.add_alias, "info@example.test", "alice@example.test")
    store = MailStore(reg)
    for i in range(3):
        resolve(store.deliver(["alice@example.test"], RAW.replace(b"hello", b"hello %d" % i), None, 0, None))


def snapshot(url: str, folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    conn = open_snapshot(engine)
    cur = conn.cursor()
    out = {}
    for table in dbdump.dependency_order(cur, engine.name):
        cols = sorted(dbdump.columns(cur, engine.name, table))
        order = dbdump.primary_order(cur, engine.name, table, cols)
        out[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                      for row in dbdump.iter_rows(conn, engine.name, table, order, cols)]
    conn.close()
    return out


def blob_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "tmp" not in p.parts}


def test_backup_restore_roundtrip(registry: Any, tmp_path: Path, db_url: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fill(registry)
    config = registry.config
    archive = tmp_path / "b.tar.gz"
    summary = backup(config, str(archive))
    assert summary["tables"]["users"] == 2 and summary["tables"]["messages"] == 3 and summary["blobs"] == 3
    assert verify(str(archive))["members"] > 10
    before = snapshot(db_url, tmp_path)
    # onto an empty DATA_DIR: the archive's tau.ini is written there; the database is a new
    # SQLite file named by the environment (the test's source database lives outside data_dir)
    for name in ("fresh",):
        target = tmp_path / f"restored-{name}"
        target.mkdir()
        cfg = target / "tau.ini"
        monkeypatch.setenv("TAU_DATABASE_URL", sqlite_url(str(target)))
        result = restore(str(archive), str(cfg))
        assert result["tables"]["messages"] == 3
        restored_config = load_config(str(cfg))
        assert snapshot(restored_config.database_url, target) == before
        assert blob_files(target / "blobs") == blob_files(config.data_path("blobs"))
        assert (target / "secret").read_bytes() == config.data_path("secret").read_bytes()


def test_restore_refuses_a_database_with_rows(registry: Any, tmp_path: Path) -> None:
    fill(registry)
    archive = tmp_path / "b.tar.gz"
    backup(registry.config, str(archive))
    with pytest.raises(RestoreError, match="not empty"):
        restore(str(archive), registry.config.path)


def test_verify_detects_corruption_and_truncation(registry: Any, tmp_path: Path) -> None:
    fill(registry)
    archive = tmp_path / "b.tar.gz"
    backup(registry.config, str(archive))
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("db/") and "users" in member.name:
                data = data.replace(b"alice", b"mallory")
                member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(RestoreError, match="corrupt"):
        verify(str(bad))
    truncated = tmp_path / "trunc.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(RestoreError, match="unreadable|missing"):
        verify(str(truncated))


def test_sqlite_backup_restores_into_postgres(tmp_path: Path, fresh_databases: Any) -> None:
    """The documented migration path (and back): ids, UIDs, UIDVALIDITY and blobs unchanged."""
    from tests.support.harness import make_registry

    source = make_registry(tmp_path / "src", sqlite_url(str(tmp_path / "src")))
    fill(source)
    archive = tmp_path / "b.tar.gz"
    backup(source.config, str(archive))
    before = snapshot(source.config.database_url, tmp_path)
    url = fresh_databases.make()
    target = tmp_path / "dst"
    target.mkdir()
    write_config(target, url)
    (target / "secret").unlink()
    restore(str(archive), str(target / "tau.ini"))
    cfg = load_config(str(target / "tau.ini"), environ={})
    assert snapshot(cfg.database_url, target) == before
    # new rows after the restore get fresh ids (sequences moved past the restored ones)
    from tau.storage.database import SyncDatabase

    db = SyncDatabase(create_engine(cfg.database_url))
    highest = max(u.id for u in db.run("list", accounts.list_users))
    assert db.run("add", accounts.add_user, "carol@example.test", None).id > highest
    db.close()
    source.db.close()
