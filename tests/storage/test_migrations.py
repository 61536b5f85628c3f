"""Versioned schema deltas (issue 2, Database): applied once, recorded, refused when too new,
all-or-nothing, safe for two nodes starting at once, and an upgrade equals a fresh install."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from tau.storage import migrate as migrate_module
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine
from tau.storage.migrate import Delta, SchemaTooNew, code_version, load_deltas, migrate, schema_status


def connect(url: str) -> SyncDatabase:
    return SyncDatabase(create_engine(url))


def recorded(db: SyncDatabase) -> list[int]:
    return [r[0] for r in db.run("t", lambda txn: txn.query("SELECT version FROM schema_version ORDER BY version"))]


def schema_of(db: SyncDatabase) -> dict[str, Any]:
    """Tables with their columns and indexes, comparable between two databases."""
    def read(txn: Any) -> dict[str, Any]:
        if txn.engine.name == "sqlite":
            names = [r[0] for r in txn.query("SELECT name FROM sqlite_master WHERE type = 'table'"
                                             " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            tables = {n: sorted(tuple(r[1:]) for r in txn.query(f'PRAGMA table_info("{n}")')) for n in names}
            indexes = sorted(r for r in txn.query("SELECT name, tbl_name, sql FROM sqlite_master"
                                                  " WHERE type = 'index' AND sql IS NOT NULL"))
            return {"tables": tables, "indexes": indexes}
        schema = txn.scalar("SELECT current_schema()")
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for row in txn.query("SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
                             " FROM information_schema.columns WHERE table_schema = current_schema()"):
            tables.setdefault(row[0], []).append(tuple(row[1:]))
        indexes = sorted((r[0], r[1], r[2].replace(f"{schema}.", "S."))
                         for r in txn.query("SELECT indexname, tablename, indexdef FROM pg_indexes"
                                            " WHERE schemaname = current_schema()"))
        return {"tables": {t: sorted(c, key=repr) for t, c in tables.items()}, "indexes": indexes}

    return db.run("schema_of", read)


def test_a_fresh_database_gets_every_delta_once_and_records_it(fresh_db_url: str) -> None:
    db = connect(fresh_db_url)
    expected = [d.version for d in load_deltas(db.engine.name)]
    assert expected[:2] == [1, 2]
    applied = migrate(db)
    assert [d.version for d in applied] == expected
    assert recorded(db) == expected
    assert schema_status(db) == (expected[-1], code_version())
    db.close()


def test_migrating_an_up_to_date_database_does_nothing(fresh_db_url: str) -> None:
    db = connect(fresh_db_url)
    migrate(db)
    before = schema_of(db)
    assert migrate(db) == []
    assert schema_of(db) == before
    assert len(recorded(db)) == len(load_deltas(db.engine.name))
    db.close()


def test_a_database_newer_than_the_code_is_refused(fresh_db_url: str) -> None:
    db = connect(fresh_db_url)
    migrate(db)
    newer = code_version() + 1
    db.run("t", lambda txn: txn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                                        (newer, "from_the_future", 0)))
    with pytest.raises(SchemaTooNew, match=f"version {newer}.*upgrade tau"):
        migrate(db)
    assert recorded(db)[-1] == newer
    db.close()


def test_upgrading_from_the_first_delta_equals_a_fresh_install(fresh_databases: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = connect(fresh_databases.make())
    migrate(fresh)
    old = connect(fresh_databases.make())
    everything = migrate_module.load_deltas
    with monkeypatch.context() as m:
        m.setattr(migrate_module, "load_deltas", lambda engine: everything(engine)[:1])
        assert [d.version for d in migrate(old)] == [1]
    assert recorded(old) == [1]
    applied = migrate(old)
    assert [d.version for d in applied] == [d.version for d in everything(old.engine.name)][1:]
    assert schema_of(old) == schema_of(fresh)
    assert recorded(old) == recorded(fresh)
    fresh.close()
    old.close()


def test_a_failing_delta_applies_nothing(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = connect(fresh_db_url)
    real = load_deltas(db.engine.name)
    broken = Delta(real[-1].version + 1, "broken", "CREATE TABLE half_done (x INTEGER);\nSELECT * FROM no_such_table;")
    monkeypatch.setattr(migrate_module, "load_deltas", lambda engine: [*real, broken])
    with pytest.raises(Exception, match="no_such_table"):
        migrate(db)
    monkeypatch.undo()
    tables = schema_of(db)["tables"]
    assert "half_done" not in tables and "users" not in tables
    assert [d.version for d in migrate(db)] == [d.version for d in real]
    db.close()


def test_two_nodes_starting_at_once_migrate_once(fresh_db_url: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def node() -> None:
        db = connect(fresh_db_url)
        try:
            barrier.wait()
            results.append([d.version for d in migrate(db)])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=node) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    everything = [d.version for d in load_deltas(create_engine(fresh_db_url).name)]
    assert sorted(results) == [[], everything]


def test_schema_files_use_only_known_tokens() -> None:
    """Every ``{token}`` in a delta is one the engines substitute (else the SQL would be invalid)."""
    from tau.storage.engines import PostgresEngine, SqliteEngine

    for engine in (SqliteEngine, PostgresEngine):
        for delta in load_deltas(engine.name):
            body = "\n".join(line for line in delta.sql.splitlines() if not line.strip().startswith("--"))
            unknown = set(re.findall(r"\{([a-z_]+)\}", body)) - set(engine.schema_tokens)
            assert not unknown, f"{delta.version:04d}_{delta.name} on {engine.name}: {unknown}"
