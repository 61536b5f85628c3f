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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2

from tau.auth import accounts
from tau.auth.accounts import User
from tau.config import DEFAULT_CONFIG, Config, load_config
from tau.keys import Keys, load_secret
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


def add_group(subparsers: Any, name: str, help: str, description: str | None = None,
              dest: str = "action", metavar: str = "ACTION") -> Any:
    """A subcommand group (``tau user``): its actions' sub-parsers; alone it prints its help."""
    group = add_parser(subparsers, name, help, description)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=dest, metavar=metavar)


def add_action(sub: Any, name: str, help: str, handler: Callable[[argparse.Namespace], int],
               positionals: Sequence[str] = (), json: bool = False,
               description: str | None = None) -> argparse.ArgumentParser:
    """One action of a group: positionals by name (``"destination?"`` is optional), metavar in capitals."""
    parser = add_parser(sub, name, help, description)
    for positional in positionals:
        dest = positional.rstrip("?")
        parser.add_argument(dest, metavar=dest.upper(), **({"nargs": "?"} if positional.endswith("?") else {}))
    if json:
        add_json_argument(parser)
    parser.set_defaults(handler=handler)
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
    return SyncDatabase(engine, keyring=_keyring(config))


def _keyring(config: Config) -> Any:
    """The keyring for commands that read or write sealed rows (None without a secret yet: init)."""
    from tau.atrest.keyring import Keyring
    from tau.keys import SecretError

    try:
        return Keyring(keys_for(config))
    except (SecretError, OSError):
        return None


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


@contextmanager
def open_user(config: Config, address: str) -> Iterator[tuple[SyncDatabase, User]]:
    """The database and the existing user ADDRESS names (unknown: AccountError, exit 1)."""
    with open_database(config) as db:
        yield db, db.run("cli_user_get", accounts.require_user, address, readonly=True)


def run_store(config: Config, name: str, fn: Callable[..., Any], *fn_args: Any, readonly: bool = False) -> Any:
    """Open the configured database, run one store function in a transaction, return its result."""
    with open_database(config) as db:
        return db.run(name, fn, *fn_args, readonly=readonly)


def keys_for(config: Config) -> Keys:
    """The installation secret's keys (app password and client secret hashes, TOTP secrets)."""
    return Keys(load_secret(config.data_path(config.tau.secret_file)))


def require_confirmation(yes: bool, refusal: str, question: str) -> None:
    """Go on with ``--yes`` or a "y" typed on a terminal; refuse otherwise (exit 1)."""
    if yes:
        return
    if not stdin_is_tty():
        raise CliError(f"{refusal} without --yes (stdin is not a terminal)")
    if not confirm(question):
        raise CliError("not deleted", EXIT_FAILED)


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


def print_listing(args: argparse.Namespace, items: Sequence[Any], empty: str, header: list[str],
                  row: Callable[[Any], list[str]], public: Callable[[Any], Any] | None = None) -> int:
    """A ``list`` action's output: JSON with ``--json``, else ``empty`` or a table."""
    if args.json:
        print_json([public(item) for item in items] if public else items)
    elif not items:
        print(empty)
    else:
        print_table([header] + [row(item) for item in items])
    return EXIT_OK


def print_secret_once(line: str, what_to_do: str) -> None:
    """A generated secret, set apart so it is easy to copy; only its keyed hash is stored."""
    print()
    print(f"    {line}")
    print()
    print(f"{what_to_do} now: it is not stored and will not be shown again.")


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
