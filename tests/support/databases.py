"""Fresh databases for tests: one PostgreSQL database per test run, one SQLite file per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("TAU_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def engines() -> list[str]:
    """Engines selected by ``TAU_TEST_ENGINES`` (default: both)."""
    return [e.strip() for e in os.environ.get("TAU_TEST_ENGINES", "sqlite,postgres").split(",") if e.strip()]


class PostgresDatabase:
    """A throwaway database on the local server, dropped at the end."""

    def __init__(self, prefix: str = "tau_test") -> None:
        import psycopg2

        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}"')
        conn.close()
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def truncate_all(self) -> None:
        """Empty every table but the schema record (much faster than a new database per test)."""
        import psycopg2

        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_version'")
            tables = [r[0] for r in cur.fetchall()]
            if tables:
                self._empty(cur, tables)
        conn.close()

    @staticmethod
    def _empty(cur: Any, tables: list[str]) -> None:
        # TRUNCATE costs ~5 ms per table (and CASCADE pulls in every referencing table), so only
        # the tables holding rows are emptied, and their id sequences restarted
        cur.execute(" UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables))
        used = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT schemaname, sequencename FROM pg_sequences"
                    " WHERE schemaname = 'public' AND last_value IS NOT NULL")
        sequences = cur.fetchall()
        if not used and not sequences:
            return
        try:
            cur.execute("SET session_replication_role = replica")  # no FK triggers: all goes anyway
        except Exception:  # not a superuser: the slow, always-allowed way
            cur.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            return
        for table in used:
            cur.execute(f'DELETE FROM "{table}"')
        for schema, name in sequences:
            cur.execute(f'ALTER SEQUENCE "{schema}"."{name}" RESTART')
        cur.execute("SET session_replication_role = DEFAULT")

    def drop(self) -> None:
        import psycopg2

        conn = psycopg2.connect(PG_ADMIN_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        conn.close()


def postgres_available() -> bool:
    try:
        import psycopg2

        psycopg2.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


def sqlite_url(folder: str) -> str:
    return f"sqlite:///{os.path.join(folder, 'tau.db')}"


class FreshDatabases:
    """Databases nobody has migrated yet, for migration tests: a new SQLite file, or a new schema
    (``search_path`` in the URL) inside the run's PostgreSQL database. ``drop()`` removes them."""

    def __init__(self, engine: str, folder: Path, postgres: Callable[[], PostgresDatabase]) -> None:
        self.engine = engine
        self._folder = folder
        self._get_postgres = postgres
        self._pg: PostgresDatabase | None = None
        self._schemas: list[str] = []
        self._count = 0

    def make(self) -> str:
        self._count += 1
        if self.engine == "sqlite":
            folder = self._folder / f"fresh-{self._count}"
            folder.mkdir(parents=True)
            return sqlite_url(str(folder))
        schema = f"fresh_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE SCHEMA "{schema}"')
        self._schemas.append(schema)
        return f"{self._postgres().url}?options=-csearch_path%3D{schema}"

    def drop(self) -> None:
        for schema in self._schemas:
            self._admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._schemas.clear()

    def _postgres(self) -> PostgresDatabase:
        if self._pg is None:
            self._pg = self._get_postgres()
        return self._pg

    def _admin(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self._postgres().url, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()


def iter_engines() -> Iterator[str]:
    yield from engines()


def daemon_database_url(request: Any, engine: str | None = None) -> str | None:
    """The database URL for a test daemon on ``engine`` (default: the fixture's param): None for
    SQLite (the daemon makes its own file), else the run's PostgreSQL database, emptied."""
    if (engine or request.param) != "postgres":
        return None
    pg = request.getfixturevalue("postgres_db")
    pg.truncate_all()
    return str(pg.url)
