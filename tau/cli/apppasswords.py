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
    add_json_argument,
    add_parser,
    format_time,
    load,
    open_database,
    print_json,
    print_table,
)
from tau.config import Config
from tau.keys import Keys, load_secret

# No 0/o, 1/l/i: easy to read off a screen and type on a phone. 31 symbols, 25 of them: 123.9 bits.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GROUPS, GROUP_LENGTH = 5, 5
MAC_LABEL = "app-password"


def register(subparsers: Any) -> None:
    group = add_parser(subparsers, "apppassword", "add, list and revoke app passwords")
    group.set_defaults(group_parser=group)
    sub = group.add_subparsers(dest="action", metavar="ACTION")

    p = add_parser(sub, "add", "generate an app password for one client (shown once)")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("name", metavar="NAME", help="what it is for, e.g. 'phone'")
    p.add_argument("--json", action="store_true", help="print a JSON object with the password")
    p.set_defaults(handler=add)

    p = add_parser(sub, "list", "list a user's app passwords (never the passwords themselves)")
    p.add_argument("address", metavar="ADDRESS")
    add_json_argument(p)
    p.set_defaults(handler=list_)

    p = add_parser(sub, "revoke", "revoke one app password")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("id", metavar="ID", type=int, help="as shown by `tau apppassword list`")
    p.set_defaults(handler=revoke)


def generate() -> str:
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))


def keys_for(config: Config) -> Keys:
    return Keys(load_secret(config.data_path(config.tau.secret_file)))


def add(args: argparse.Namespace) -> int:
    config = load(args)
    keys = keys_for(config)
    password = generate()
    name = args.name.strip()
    with open_database(config) as db:
        user = db.run("cli_user_get", accounts.require_user, args.address, readonly=True)
        app_id = db.run("cli_apppassword_add", accounts.add_app_password, user.address, name,
                        keys.mac(MAC_LABEL, password))
    if args.json:
        print_json({"id": app_id, "address": user.address, "name": name, "password": password})
        return EXIT_OK
    print(f"app password {app_id} ({name}) for {user.address}:")
    print()
    print(f"    {password}")
    print()
    print("Enter it in the client now: it is not stored and will not be shown again.")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        items = db.run("cli_apppassword_list", accounts.list_app_passwords, args.address, readonly=True)
    if args.json:
        print_json(items)
    elif not items:
        print(f"{args.address} has no app passwords")
    else:
        rows = [["ID", "NAME", "CREATED", "LAST USED"]]
        rows += [[str(i["id"]), str(i["name"]), format_time(i["created_at"]),  # type: ignore[arg-type]
                  format_time(i["last_used_at"])] for i in items]  # type: ignore[arg-type]
        print_table(rows)
    return EXIT_OK


def revoke(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        user = db.run("cli_user_get", accounts.require_user, args.address, readonly=True)
        db.run("cli_apppassword_revoke", accounts.revoke_app_password, user.address, args.id)
    print(f"revoked app password {args.id} of {user.address}")
    return EXIT_OK
