"""``tau user send-as add|remove|list``: shared addresses a user may send from (tau.auth.sendas).

Submission refuses an envelope sender, header From or Sender that is not the user's own address,
an alias delivering to them, or an address granted here (``553 5.7.1``).
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import sendas
from tau.auth.accounts import normalize_address
from tau.cli.common import EXIT_OK, add_json_argument, add_parser, load, open_database, print_json, print_table


def register(sub: Any) -> None:
    """Called by ``tau.cli.users.register`` with the ``user`` group's sub-parsers."""
    group = add_parser(sub, "send-as", "shared addresses a user may send from",
                       "A user may always send from their own address and the aliases delivering to "
                       "them; any other address of a domain served here needs a send-as grant.")
    group.set_defaults(group_parser=group)
    actions = group.add_subparsers(dest="send_as_action", metavar="ACTION")

    p = add_parser(actions, "add", "let USER send as ADDRESS (envelope sender, From, Sender)")
    p.add_argument("user", metavar="USER")
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(handler=add)

    p = add_parser(actions, "remove", "take the grant back")
    p.add_argument("user", metavar="USER")
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(handler=remove)

    p = add_parser(actions, "list", "list the grants (of USER, or all)")
    p.add_argument("user", metavar="USER", nargs="?")
    add_json_argument(p)
    p.set_defaults(handler=list_)


def add(args: argparse.Namespace) -> int:
    with open_database(load(args)) as db:
        address = db.run("cli_send_as_add", sendas.grant, args.user, args.address)
    print(f"{normalize_address(args.user)} may send as {address}")
    return EXIT_OK


def remove(args: argparse.Namespace) -> int:
    with open_database(load(args)) as db:
        address = db.run("cli_send_as_remove", sendas.revoke, args.user, args.address)
    print(f"{normalize_address(args.user)} may no longer send as {address}")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    with open_database(load(args)) as db:
        grants = db.run("cli_send_as_list", sendas.list_grants, args.user, readonly=True)
    if args.json:
        print_json(grants)
    elif not grants:
        print("no send-as grants")
    else:
        print_table([["USER", "ADDRESS"]] + [[str(g["user"]), str(g["address"])] for g in grants])
    return EXIT_OK
