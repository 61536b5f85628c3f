"""Fixtures for the ``tau`` command tests: an installed data folder on SQLite and on PostgreSQL.

PostgreSQL: one database ``tau_cli_<random>`` per test session (dropped at the end) on
127.0.0.1:5432, and one schema per test inside it (``search_path`` in the URL), so tests stay
independent without creating a database each. ``TAU_TEST_POSTGRES`` names another server.
"""

from __future__ import annotations

import io
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tau.cli.main import main
from tau.config import load_config
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine

REPO = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("TAU_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DOMAIN = "example.test"
HOSTNAME = "mail.example.test"


@dataclass
class Result:
    code: int
    out: str
    err: str


Runner = Callable[..., Result]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TAU_* from the developer's shell may leak into a test."""
    for name in list(os.environ):
        if name.startswith("TAU_") and name != "TAU_TEST_POSTGRES":
            monkeypatch.delenv(name)


def _pg_admin() -> Any:
    import psycopg2

    conn = psycopg2.connect(f"{PG_SERVER}/postgres", connect_timeout=3)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this session."""
    import psycopg2

    try:
        admin = _pg_admin()
    except psycopg2.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}: {str(exc).strip()}")
    name = f"tau_cli_{secrets.token_hex(5)}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(engine_name: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (``tau init``'s default), else a URL to an empty PostgreSQL schema."""
    if engine_name == "sqlite":
        return None
    import psycopg2

    base = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    conn = psycopg2.connect(base)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture
def tau(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Run ``tau ARGV`` in-process; ``stdin=`` feeds it (never a TTY)."""

    def run(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@dataclass
class Install:
    data_dir: Path
    config: Path
    database_url: str | None
    tau: Runner

    def run(self, *argv: str, stdin: str = "") -> Result:
        """``tau ARGV --config <this install>``."""
        return self.tau(*argv, "--config", str(self.config), stdin=stdin)

    def db_run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Look behind the CLI: run ``fn(txn, *args)`` on this install's database."""
        config = load_config(str(self.config))
        db = SyncDatabase(create_engine(config.database_url))
        try:
            return db.run("test", fn, *args)
        finally:
            db.close()


def _init_args(data_dir: Path, database_url: str | None, *extra: str) -> list[str]:
    args = ["init", str(data_dir), "--domain", DOMAIN, "--hostname", HOSTNAME, *extra]
    if database_url:
        args += ["--database-url", database_url]
    return args


@pytest.fixture
def init_args() -> Callable[..., list[str]]:
    """``init_args(data_dir, database_url, *extra)``: argv of ``tau init`` for example.test."""
    return _init_args


@pytest.fixture
def installed(tau: Runner, tmp_path: Path, database_url: str | None) -> Install:
    """``tau init`` done: domain example.test, no users yet."""
    data_dir = tmp_path / "data"
    result = tau(*_init_args(data_dir, database_url))
    assert result.code == 0, result.err
    return Install(data_dir, data_dir / "tau.ini", database_url, tau)


@pytest.fixture
def with_alice(installed: Install) -> Install:
    result = installed.run("user", "add", "alice@example.test", "--password-stdin", stdin="alice-password\n")
    assert result.code == 0, result.err
    return installed
