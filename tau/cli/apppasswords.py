"""``tau apppassword add|list|revoke``: per-client passwords that work wherever a password does.

The server generates them (people choose weak ones), shows each once, and stores only a keyed
hash (``Keys.mac("app-password", ...)`` under the installation secret): a stolen database does
not reveal them, and no slow hash is needed since they carry 120+ bits of entropy.
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from tau.auth import accounts
from tau.cli.common import (
    EXIT_OK,
    add_action,
    add_group,
    format_time,
    keys_for,
    load,
    open_user,
    print_json,
    print_listing,
    print_secret_once,
    run_store,
)

# No 0/o, 1/l/i: easy to read off a screen and type on a phone. 31 symbols, 25 of them: 123.9 bits.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GROUPS, GROUP_LENGTH = 5, 5
MAC_LABEL = "app-password"


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "apppassword", "add, list and revoke app passwords")
    p = add_action(sub, "add", "generate an app password for one client (shown once)", add, ("address",))
    p.add_argument("name", metavar="NAME", help="what it is for, e.g. 'phone'")
    p.add_argument("--json", action="store_true", help="print a JSON object with the password")
    add_action(sub, "list", "list a user's app passwords (never the passwords themselves)", list_, ("address",),
               json=True)
    p = add_action(sub, "revoke", "revoke one app password", revoke, ("address",))
    p.add_argument("id", metavar="ID", type=int, help="as shown by `tau apppassword list`")


def generate() -> str:
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))


def add(args: argparse.Namespace) -> int:
    config = load(args)
    keys = keys_for(config)
    password = generate()
    name = args.name.strip()
    with open_user(config, args.address) as (db, user):
        app_id = db.run("cli_apppassword_add", accounts.add_app_password, user.address, name,
                        keys.mac(MAC_LABEL, password))
    if args.json:
        print_json({"id": app_id, "address": user.address, "name": name, "password": password})
        return EXIT_OK
    print(f"app password {app_id} ({name}) for {user.address}:")
    print_secret_once(password, "Enter it in the client")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    items = run_store(load(args), "cli_apppassword_list", accounts.list_app_passwords, args.address, readonly=True)
    return print_listing(args, items, f"{args.address} has no app passwords", ["ID", "NAME", "CREATED", "LAST USED"],
                         lambda i: [str(i["id"]), str(i["name"]), format_time(i["created_at"]),
                                    format_time(i["last_used_at"])])


def revoke(args: argparse.Namespace) -> int:
    with open_user(load(args), args.address) as (db, user):
        db.run("cli_apppassword_revoke", accounts.revoke_app_password, user.address, args.id)
    print(f"revoked app password {args.id} of {user.address}")
    return EXIT_OK
