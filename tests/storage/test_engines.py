"""What each engine promises on every connection (SQLite: WAL, foreign keys, full sync, a busy
timeout, one writer; PostgreSQL: UTC sessions, URLs described without secrets)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tau.storage.engines import PostgresEngine, SqliteEngine, create_engine
from tau.storage.engines.base import DatabaseUnavailable, qmark_to_format


def test_sqlite_connections_use_wal_foreign_keys_and_full_sync(tmp_path: Path) -> None:
    conn = SqliteEngine(str(tmp_path / "tau.db")).connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    conn.close()


def test_sqlite_pool_has_exactly_one_connection() -> None:
    _, _, kwargs = SqliteEngine("/x/tau.db").pool_args()
    assert kwargs["cp_min"] == kwargs["cp_max"] == 1


def test_two_processes_opening_a_new_sqlite_file_at_once_both_succeed(tmp_path: Path) -> None:
    """The daemon and ``tau migrate`` may race to create the file; neither may fail with 'locked'."""
    for trial in range(25):  # the race is narrow: about one try in fifteen lost it before the fix
        path = str(tmp_path / f"race{trial}.db")
        barrier, errors = threading.Barrier(3), []

        def open_it(path: str = path, barrier: threading.Barrier = barrier, errors: list = errors) -> None:
            barrier.wait()
            try:
                conn = SqliteEngine(path).connect()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
                time.sleep(0.01)
                conn.execute("COMMIT")
                conn.close()
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []


def test_sqlite_in_a_missing_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        SqliteEngine(str(tmp_path / "no" / "tau.db")).connect()


def test_the_url_picks_the_engine() -> None:
    assert isinstance(create_engine("sqlite:///var/tau.db"), SqliteEngine)
    assert isinstance(create_engine("postgres://u@h/db"), PostgresEngine)
    assert create_engine("postgres://u@h/db").url == "postgresql://u@h/db"


def test_postgres_urls_are_described_without_the_password() -> None:
    engine = PostgresEngine("postgresql://tau:pa55word@db.example:5433/tau?sslmode=require")
    assert engine.describe() == "postgresql://tau@db.example:5433/tau"


def test_postgres_sessions_are_in_utc(postgres_db: object) -> None:
    conn = PostgresEngine(postgres_db.url).connect()  # type: ignore[attr-defined]
    with conn.cursor() as cur:
        cur.execute("SHOW TIME ZONE")
        assert cur.fetchone()[0] == "UTC"
    conn.close()


def test_question_marks_become_format_placeholders_and_percent_is_escaped() -> None:
    assert qmark_to_format("SELECT '100%' WHERE a = ? AND b LIKE ?") == "SELECT '100%%' WHERE a = %s AND b LIKE %s"
