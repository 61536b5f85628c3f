"""``tau migrate``: apply schema deltas ahead of a start (the daemon also does it before binding).

Useful before a rolling upgrade of several nodes, or to see with ``--status`` what a new
version would change.
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.cli.common import EXIT_OK, add_parser, connect, load, print_json
from tau.storage.migrate import SchemaTooNew, load_deltas, migrate, schema_status


def register(subparsers: Any) -> None:
    parser = add_parser(subparsers, "migrate", "bring the database schema up to date")
    parser.add_argument("--status", action="store_true", help="only show the schema versions")
    parser.add_argument("--json", action="store_true", help="with --status: print a JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    db = connect(config, create=not args.status)
    try:
        if args.status:
            return _status(db, args.json)
        applied = migrate(db)
    finally:
        db.close()
    if applied:
        for delta in applied:
            print(f"applied {delta.version:04d}_{delta.name}")
    else:
        print(f"database schema is up to date (version {_latest(db)})")
    return EXIT_OK


def _latest(db: Any) -> int:
    deltas = load_deltas(db.engine.name)
    return deltas[-1].version if deltas else 0


def _status(db: Any, as_json: bool) -> int:
    current, code = schema_status(db)
    pending = [d for d in load_deltas(db.engine.name) if d.version > current]
    if as_json:
        print_json({"database": current, "code": code,
                    "pending": [f"{d.version:04d}_{d.name}" for d in pending]})
    else:
        print(f"database: {db.engine.describe()}")
        print(f"schema version: {current} (this tau: {code})")
        if pending:
            print("pending: " + ", ".join(f"{d.version:04d}_{d.name}" for d in pending))
            print("run `tau migrate` to apply them")
        elif current == code:
            print("up to date")
    if current > code:
        raise SchemaTooNew(f"database schema is version {current} but this tau knows only up to {code}; "
                           "upgrade tau")
    return EXIT_OK
