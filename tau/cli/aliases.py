"""``tau alias add|list|delete``: extra addresses delivering to users; ``@domain`` is a catch-all."""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import accounts
from tau.cli.common import (
    EXIT_OK,
    add_json_argument,
    add_parser,
    load,
    open_database,
    print_json,
    print_table,
)


def register(subparsers: Any) -> None:
    group = add_parser(subparsers, "alias", "add, list and delete aliases")
    group.set_defaults(group_parser=group)
    sub = group.add_subparsers(dest="action", metavar="ACTION")

    p = add_parser(sub, "add", "deliver mail for ADDRESS to DESTINATION",
                   "Deliver mail for ADDRESS (or @domain: every unknown address of the domain) "
                   "to DESTINATION, a user here or an outside address.")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("destination", metavar="DESTINATION")
    p.set_defaults(handler=add)

    p = add_parser(sub, "list", "list aliases")
    p.add_argument("--domain", metavar="D", help="only aliases of this domain")
    add_json_argument(p)
    p.set_defaults(handler=list_)

    p = add_parser(sub, "delete", "delete an alias (every destination, or just DESTINATION)")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("destination", metavar="DESTINATION", nargs="?")
    p.set_defaults(handler=delete)


def add(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        db.run("cli_alias_add", accounts.add_alias, args.address, args.destination)
    print(f"alias {_source(args.address)} -> {accounts.normalize_address(args.destination)}")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        aliases = db.run("cli_alias_list", accounts.list_aliases, args.domain, readonly=True)
    if args.json:
        print_json(aliases)
    elif not aliases:
        print("no aliases")
    else:
        print_table([["ADDRESS", "DESTINATION"]] + [[a["address"], a["destination"]] for a in aliases])
    return EXIT_OK


def delete(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        count = db.run("cli_alias_delete", accounts.delete_alias, args.address, args.destination)
    print(f"deleted {count} alias{'es' if count != 1 else ''} of {_source(args.address)}")
    return EXIT_OK


def _source(address: str) -> str:
    address = address.strip()
    if address.startswith("@"):
        return "@" + accounts.normalize_domain(address[1:])
    return accounts.normalize_address(address)
