"""Shared fixtures: every store test runs on SQLite and PostgreSQL (``TAU_TEST_ENGINES``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import FreshDatabases, PostgresDatabase, engines, sqlite_url


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[PostgresDatabase]:
    db = PostgresDatabase()
    yield db
    db.drop()


@pytest.fixture(params=engines())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a new SQLite file, or the run's PostgreSQL database truncated."""
    if request.param == "sqlite":
        yield sqlite_url(str(tmp_path))
    else:
        pg: PostgresDatabase = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        yield pg.url


@pytest.fixture
def registry(tmp_path: Path, db_url: str):
    from tests.support.harness import make_registry

    reg = make_registry(tmp_path / "tau", db_url)
    yield reg
    reg.db.close()


@pytest.fixture(params=engines())
def fresh_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FreshDatabases]:
    """``fresh_databases.make()`` → the URL of a database nobody has migrated yet (per engine)."""
    maker = FreshDatabases(request.param, tmp_path, lambda: request.getfixturevalue("postgres_db"))
    yield maker
    maker.drop()


@pytest.fixture
def fresh_db_url(fresh_databases: FreshDatabases) -> str:
    return fresh_databases.make()
