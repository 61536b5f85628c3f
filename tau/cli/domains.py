"""``tau domain add|list|delete``: the mail domains this server accepts mail for."""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import accounts
from tau.cli.common import EXIT_OK, add_action, add_group, format_time, load, print_listing, run_store


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "domain", "add, list and delete mail domains")
    add_action(sub, "add", "serve mail for a domain", add, ("name",))
    add_action(sub, "list", "list domains with their number of users", list_, json=True)
    add_action(sub, "delete", "stop serving a domain (it must have no users; its aliases go)", delete, ("name",))


def add(args: argparse.Namespace) -> int:
    config = load(args)
    domain = run_store(config, "cli_domain_add", accounts.add_domain, args.name)
    print(f"added domain {domain}")
    print(f"DNS records to publish: tau check --config {config.path}")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    domains = run_store(load(args), "cli_domain_list", accounts.list_domains, readonly=True)
    return print_listing(args, domains, "no domains", ["DOMAIN", "USERS", "ADDED"],
                         lambda d: [str(d["name"]), str(d["users"]), format_time(d["created_at"])])


def delete(args: argparse.Namespace) -> int:
    run_store(load(args), "cli_domain_delete", accounts.delete_domain, args.name)
    print(f"deleted domain {accounts.normalize_domain(args.name)}")
    return EXIT_OK
