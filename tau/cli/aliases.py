"""``tau alias add|list|delete``: extra addresses delivering to users; ``@domain`` is a catch-all."""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import accounts
from tau.cli.common import EXIT_OK, add_action, add_group, load, print_listing, run_store


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "alias", "add, list and delete aliases")
    add_action(sub, "add", "deliver mail for ADDRESS to DESTINATION", add, ("address", "destination"),
               description="Deliver mail for ADDRESS (or @domain: every unknown address of the domain) "
                           "to DESTINATION, a user here or an outside address.")
    p = add_action(sub, "list", "list aliases", list_, json=True)
    p.add_argument("--domain", metavar="D", help="only aliases of this domain")
    add_action(sub, "delete", "delete an alias (every destination, or just DESTINATION)", delete,
               ("address", "destination?"))


def add(args: argparse.Namespace) -> int:
    run_store(load(args), "cli_alias_add", accounts.add_alias, args.address, args.destination)
    print(f"alias {_source(args.address)} -> {accounts.normalize_address(args.destination)}")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    aliases = run_store(load(args), "cli_alias_list", accounts.list_aliases, args.domain, readonly=True)
    return print_listing(args, aliases, "no aliases", ["ADDRESS", "DESTINATION"],
                         lambda a: [a["address"], a["destination"]])


def delete(args: argparse.Namespace) -> int:
    count = run_store(load(args), "cli_alias_delete", accounts.delete_alias, args.address, args.destination)
    print(f"deleted {count} alias{'es' if count != 1 else ''} of {_source(args.address)}")
    return EXIT_OK


def _source(address: str) -> str:
    address = address.strip()
    if address.startswith("@"):
        return "@" + accounts.normalize_domain(address[1:])
    return accounts.normalize_address(address)
