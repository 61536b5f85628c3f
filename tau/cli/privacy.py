"""``tau user export ADDRESS OUT.tar.gz`` and ``tau user delete --purge`` (tau.ops.privacy).

Registered into the ``user`` group by ``tau.cli.users``: ``export`` is a new action; ``--purge``
extends ``delete`` so the plain delete keeps its behaviour (rows go, blobs are collected later
by the services) while ``--purge`` also removes every blob and row that names the user at once.
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import accounts
from tau.cli.common import EXIT_FAILED, EXIT_OK, CliError, add_parser, confirm, load, open_database, stdin_is_tty


def register(sub: Any) -> None:
    p = add_parser(sub, "export", "write everything stored about a user to a tar.gz (GDPR export)")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("archive", metavar="OUT.tar.gz")
    p.set_defaults(handler=export)
    delete = sub.choices.get("delete")
    if delete is not None:
        delete.add_argument("--purge", action="store_true",
                            help="also remove every trace at once: mail and file blobs, sent messages, queue")
        previous = delete.get_default("handler")
        delete.set_defaults(handler=lambda args: purge(args) if args.purge else previous(args))


def export(args: argparse.Namespace) -> int:
    from tau.ops.privacy import export_user

    config = load(args)
    with open_database(config) as db:
        counts = export_user(config, db, args.address, args.archive)
    print(f"wrote {args.archive}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return EXIT_OK


def purge(args: argparse.Namespace) -> int:
    from tau.ops.privacy import purge_user

    config = load(args)
    with open_database(config) as db:
        user = db.run("cli_user_get", accounts.require_user, args.address, readonly=True)
        if not args.yes:
            if not stdin_is_tty():
                raise CliError(f"refusing to purge {user.address} without --yes (stdin is not a terminal)")
            if not confirm(f"Delete {user.address} and every trace of their data, irreversibly?"):
                raise CliError("not deleted", EXIT_FAILED)
        counts = purge_user(config, db, user.address)
    print(f"purged {user.address} ({counts['mail_blobs']} mail blobs, {counts['file_blobs']} file blobs removed)")
    return EXIT_OK
