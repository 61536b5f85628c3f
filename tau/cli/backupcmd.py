"""``tau backup OUT.tar.gz`` (``--verify IN.tar.gz``) and ``tau restore IN.tar.gz`` (tau.ops).

Backup runs against a live server (one consistent snapshot, see tau.ops.backup). Restore wants an
empty database: a fresh DATA_DIR (the archive's tau.ini is written to ``--config`` when that file
does not exist) or a config whose database is empty — e.g. a PostgreSQL URL, which makes
backup + restore the way to move an installation from SQLite to PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tau.cli.common import EXIT_FAILED, EXIT_OK, CliError, add_parser, load
from tau.config import DEFAULT_CONFIG


def register(subparsers: Any) -> None:
    p = add_parser(subparsers, "backup", "write a consistent archive (database, blobs, config, keys)")
    p.add_argument("archive", metavar="OUT.tar.gz", help="archive to write (or, with --verify, to check)")
    p.add_argument("--verify", action="store_true", help="check an existing archive against its manifest")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(handler=run_backup)

    p = add_parser(subparsers, "restore", "restore an archive onto an empty data dir / database")
    p.add_argument("archive", metavar="IN.tar.gz")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(handler=run_restore)


def _log(args: argparse.Namespace) -> Any:
    return (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))


def run_backup(args: argparse.Namespace) -> int:
    from tau.ops.restore import RestoreError, verify

    if args.verify:
        try:
            result = verify(args.archive)
        except (RestoreError, OSError, ValueError) as exc:
            raise CliError(f"verify failed: {exc}", EXIT_FAILED)
        print(f"{args.archive}: OK ({result['members']} members, schema {result['meta']['schema_version']}, "
              f"from {result['meta']['engine']})")
        return EXIT_OK
    from tau.ops.backup import backup

    summary = backup(load(args), args.archive, _log(args))
    rows = sum(summary["tables"].values())
    print(f"wrote {args.archive}: {len(summary['tables'])} tables, {rows} rows, {summary['blobs']} blobs, "
          f"{summary['bytes']} bytes")
    return EXIT_OK


def run_restore(args: argparse.Namespace) -> int:
    import os

    from tau.ops.restore import RestoreError, restore

    config_path = getattr(args, "config", None) or os.environ.get("TAU_CONFIG") or DEFAULT_CONFIG
    try:
        summary = restore(args.archive, config_path, _log(args))
    except RestoreError as exc:
        raise CliError(str(exc), EXIT_FAILED)
    rows = sum(summary["tables"].values())
    print(f"restored {args.archive} for {config_path}: {len(summary['tables'])} tables, {rows} rows, "
          f"{summary['blobs']} blobs")
    return EXIT_OK
