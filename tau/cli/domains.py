"""``tau domain add|list|delete``: the mail domains this server accepts mail for."""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import accounts
from tau.cli.common import (
    EXIT_OK,
    add_json_argument,
    add_parser,
    format_time,
    load,
    open_database,
    print_json,
    print_table,
)


def register(subparsers: Any) -> None:
    group = add_parser(subparsers, "domain", "add, list and delete mail domains")
    group.set_defaults(group_parser=group)
    sub = group.add_subparsers(dest="action", metavar="ACTION")

    p = add_parser(sub, "add", "serve mail for a domain")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=add)

    p = add_parser(sub, "list", "list domains with their number of users")
    add_json_argument(p)
    p.set_defaults(handler=list_)

    p = add_parser(sub, "delete", "stop serving a domain (it must have no users; its aliases go)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=delete)


def add(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        domain = db.run("cli_domain_add", accounts.add_domain, args.name)
    print(f"added domain {domain}")
    print(f"DNS records to publish: tau check --config {config.path}")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        domains = db.run("cli_domain_list", accounts.list_domains, readonly=True)
    if args.json:
        print_json(domains)
    elif not domains:
        print("no domains")
    else:
        rows = [["DOMAIN", "USERS", "ADDED"]]
        rows += [[str(d["name"]), str(d["users"]), format_time(d["created_at"])] for d in domains]  # type: ignore[arg-type]
        print_table(rows)
    return EXIT_OK


def delete(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        db.run("cli_domain_delete", accounts.delete_domain, args.name)
    print(f"deleted domain {accounts.normalize_domain(args.name)}")
    return EXIT_OK
