"""Plumbing every ``tau`` subcommand shares: config, one database connection, output, exit codes.

Exit codes (INTERFACE.md, Install and run): 0 done, 1 the operation was refused or failed
(unknown user, duplicate, weak password...), 2 usage or configuration error (bad config,
unreachable or unmigrated database). Errors go to stderr as one ``tau: message`` line.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2

from tau.config import DEFAULT_CONFIG, Config, load_config
from tau.storage.database import SyncDatabase
from tau.storage.engines import SqliteEngine, create_engine
from tau.storage.engines.base import DatabaseUnavailable
from tau.storage.migrate import SchemaTooNew, schema_status

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: what a driver raises when a query fails (the connection itself raises DatabaseUnavailable)
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg2.Error)


class CliError(Exception):
    """An expected failure: printed as ``tau: message``, exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def add_parser(subparsers: Any, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser that takes ``--config`` like every other one."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description or help)
    add_config_argument(parser, suppress=True)
    return parser


def add_config_argument(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    # On subcommands the default is SUPPRESS so ``tau --config X user list`` keeps the X given
    # before the subcommand (argparse copies sub-namespace values over the parent's).
    parser.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS if suppress else None,
        help=f"configuration file (default: $TAU_CONFIG, else {DEFAULT_CONFIG})")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON array instead of text")


def load(args: argparse.Namespace) -> Config:
    """The validated configuration named by ``--config`` / ``$TAU_CONFIG``; raises ConfigError."""
    return load_config(getattr(args, "config", None))


def connect(config: Config, create: bool = False) -> SyncDatabase:
    """One blocking connection. ``create`` allows a new SQLite file (init, migrate)."""
    engine = create_engine(config.database_url, config.database.pool_min,
                           config.database.pool_max)
    if (isinstance(engine, SqliteEngine) and engine.path != ":memory:" and not create
            and not Path(engine.path).exists()):
        raise DatabaseUnavailable(f"database {engine.path} does not exist "
                                  f"(run `tau init` or `tau migrate --config {config.path}`)")
    return SyncDatabase(engine)


@contextmanager
def open_database(config: Config, create: bool = False, check_schema: bool = True) -> Iterator[SyncDatabase]:
    """A connection to a database whose schema matches this code (else exit 2 with the fix)."""
    db = connect(config, create=create)
    try:
        if check_schema:
            current, code = schema_status(db)
            if current > code:
                raise SchemaTooNew(f"database schema is version {current} but this tau knows only up to "
                                   f"{code}; upgrade tau")
            if current < code:
                raise CliError(f"database schema is version {current}, this tau needs {code}: "
                               f"run `tau migrate --config {config.path}`", EXIT_USAGE)
        yield db
    finally:
        db.close()


def database_error(exc: Exception) -> str:
    """The first line of a driver's message: enough for an operator, never a traceback."""
    lines = str(exc).strip().splitlines()
    return "database error: " + (lines[0] if lines else exc.__class__.__name__)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_table(rows: list[list[str]]) -> None:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip())


def format_time(epoch: int | None) -> str:
    if epoch is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm(question: str) -> bool:
    """Ask on the terminal; only called when stdin is a TTY."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
