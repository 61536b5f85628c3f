"""``tau user send-as add|remove|list``: shared addresses a user may send from (tau.auth.sendas).

Submission refuses an envelope sender, header From or Sender that is not the user's own address,
an alias delivering to them, or an address granted here (``553 5.7.1``).
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import sendas
from tau.auth.accounts import normalize_address
from tau.cli.common import EXIT_OK, add_action, add_group, load, print_listing, run_store


def register(sub: Any) -> None:
    """Called by ``tau.cli.users.register`` with the ``user`` group's sub-parsers."""
    actions = add_group(sub, "send-as", "shared addresses a user may send from",
                        "A user may always send from their own address and the aliases delivering to "
                        "them; any other address of a domain served here needs a send-as grant.",
                        dest="send_as_action")
    add_action(actions, "add", "let USER send as ADDRESS (envelope sender, From, Sender)", add, ("user", "address"))
    add_action(actions, "remove", "take the grant back", remove, ("user", "address"))
    add_action(actions, "list", "list the grants (of USER, or all)", list_, ("user?",), json=True)


def add(args: argparse.Namespace) -> int:
    address = run_store(load(args), "cli_send_as_add", sendas.grant, args.user, args.address)
    print(f"{normalize_address(args.user)} may send as {address}")
    return EXIT_OK


def remove(args: argparse.Namespace) -> int:
    address = run_store(load(args), "cli_send_as_remove", sendas.revoke, args.user, args.address)
    print(f"{normalize_address(args.user)} may no longer send as {address}")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    grants = run_store(load(args), "cli_send_as_list", sendas.list_grants, args.user, readonly=True)
    return print_listing(args, grants, "no send-as grants", ["USER", "ADDRESS"],
                         lambda g: [str(g["user"]), str(g["address"])])
