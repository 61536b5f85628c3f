"""``tau``: the operator command. Builds the parser, dispatches, turns expected errors into exit codes.

Each subcommand group lives in its own module with ``register(subparsers)``; handlers take the
parsed arguments and return an exit code. Expected failures never show a traceback: they are
printed as one ``tau: message`` line on stderr (exit codes in :mod:`tau.cli.common`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tau.auth.accounts import AccountError
from tau.auth.passwords import WeakPassword
from tau.cli import (
    aliases,
    apppasswords,
    backupcmd,
    chat,
    check,
    configcmd,
    dkim,
    domains,
    init,
    keyscmd,
    migrate,
    oauthclients,
    queuecmd,
    users,
)
from tau.cli.common import (
    DATABASE_ERRORS,
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    add_config_argument,
    database_error,
)
from tau.config import ConfigError
from tau.keys import SecretError, tighten_umask
from tau.storage.engines.base import DatabaseUnavailable
from tau.storage.migrate import SchemaTooNew

GROUPS = (init, migrate, users, domains, aliases, apppasswords, dkim, check, configcmd, chat, backupcmd, oauthclients,
          queuecmd, keyscmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tau", description="Operate a tau server: set it up, manage accounts, check it.",
        epilog="Run `tau COMMAND --help` for the options of one command.")
    add_config_argument(parser)
    parser.add_argument("--version", action="version", version=f"tau {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(subparsers)
    return parser


def version() -> str:
    """The installed distribution's version (setup.cfg), or ``unknown`` when run from a bare tree."""
    from importlib import metadata

    try:
        return metadata.version("tau")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (the console script passes it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    handler = getattr(args, "handler", None)
    if handler is None:
        # a group without its action (``tau user``) prints that group's help
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    tighten_umask()  # archives, restored files and keys are never group-writable or world-readable
    try:
        return int(handler(args))
    except CliError as exc:
        return _fail(exc.message, exc.code)
    except (AccountError, WeakPassword) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except (ConfigError, DatabaseUnavailable, SchemaTooNew, SecretError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except DATABASE_ERRORS as exc:
        return _fail(database_error(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # ``tau user list | head``: the reader left, that is fine
        _silence_stdout()
        return EXIT_FAILED
    except OSError as exc:  # e.g. no permission to create DATA_DIR
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_FAILED)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fail(message: str, code: int) -> int:
    print(f"tau: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
