"""``tau user export ADDRESS OUT.tar.gz`` and ``tau user delete --purge`` (tau.ops.privacy).

Registered into the ``user`` group by ``tau.cli.users``: ``export`` is a new action; ``--purge``
extends ``delete`` so the plain delete keeps its behaviour (rows go, blobs are collected later
by the services) while ``--purge`` also removes every blob and row that names the user at once.
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.cli.common import EXIT_OK, add_action, load, open_database, open_user, require_confirmation


def register(sub: Any) -> None:
    p = add_action(sub, "export", "write everything stored about a user to a tar.gz (GDPR export)", export,
                   ("address",))
    p.add_argument("archive", metavar="OUT.tar.gz")
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
    with open_user(config, args.address) as (db, user):
        require_confirmation(args.yes, f"refusing to purge {user.address}",
                             f"Delete {user.address} and every trace of their data, irreversibly?")
        counts = purge_user(config, db, user.address)
    print(f"purged {user.address} ({counts['mail_blobs']} mail blobs, {counts['file_blobs']} file blobs removed)")
    return EXIT_OK
