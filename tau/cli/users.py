"""``tau user add|passwd|list|delete|disable|enable``: local accounts (INTERFACE.md, Accounts).

Passwords come from stdin (``--password-stdin``, for scripts) or are typed twice on a terminal;
they never appear on the command line, where ``ps`` and shell history would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import Any

from tau.auth import accounts, passwords
from tau.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_json_argument,
    add_parser,
    confirm,
    load,
    open_database,
    print_json,
    print_table,
    stdin_is_tty,
)

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def register(subparsers: Any) -> None:
    group = add_parser(subparsers, "user", "add, list, change and delete users")
    group.set_defaults(group_parser=group)
    sub = group.add_subparsers(dest="action", metavar="ACTION")

    p = add_parser(sub, "add", "add a user (the domain must exist)")
    p.add_argument("address", metavar="ADDRESS")
    _password_argument(p)
    p.add_argument("--display-name", default="", metavar="NAME")
    p.add_argument("--admin", action="store_true", help="may administer the server")
    p.add_argument("--quota", type=parse_size, metavar="BYTES",
                   help="storage quota (e.g. 5000000000 or 5G; default: [limits] quota_bytes)")
    p.set_defaults(handler=add)

    p = add_parser(sub, "passwd", "set a user's password")
    p.add_argument("address", metavar="ADDRESS")
    _password_argument(p)
    p.set_defaults(handler=passwd)

    p = add_parser(sub, "list", "list users")
    p.add_argument("--domain", metavar="D", help="only users of this domain")
    add_json_argument(p)
    p.set_defaults(handler=list_)

    p = add_parser(sub, "delete", "delete a user and the aliases pointing to them")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=delete)

    p = add_parser(sub, "disable", "refuse every login of a user, keep their data")
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(handler=disable)

    p = add_parser(sub, "enable", "allow a disabled user to log in again")
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(handler=enable)

    from tau.cli import privacy, sendas, twofactor  # issue 10: 2fa, export, delete --purge; 13: send-as

    twofactor.register(sub)
    privacy.register(sub)
    sendas.register(sub)


def _password_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from stdin (one trailing newline is removed)")


def parse_size(text: str) -> int:
    """Bytes, or a number with K/M/G/T (binary multiples): for argparse ``type=``."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}")
    unit = (m.group(2) or "b")[0].lower()
    return int(m.group(1)) * 1024 ** "bkmgt".index(unit)


def read_password(from_stdin: bool, address: str) -> str:
    """The new password, from stdin or typed twice; checked for strength before any hashing."""
    if from_stdin:
        password = sys.stdin.read()
        if password.endswith("\r\n"):
            password = password[:-2]
        elif password.endswith("\n"):
            password = password[:-1]
    elif stdin_is_tty():
        password = getpass.getpass(f"New password for {address}: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CliError("the passwords do not match")
    else:
        raise CliError("stdin is not a terminal: pass --password-stdin and write the password to stdin")
    passwords.check_strength(password)
    return password


def _precheck_new(txn: Any, address: str) -> None:
    """Fail before asking for a password the same way add_user would after."""
    domain = address.rsplit("@", 1)[1]
    if not accounts.is_local_domain(txn, domain):
        raise accounts.AccountError("domain_not_found",
                                    f"domain {domain} is not served here (tau domain add {domain})")
    if accounts.get_user(txn, address) is not None:
        raise accounts.AccountError("user_exists", f"user {address} exists already")


def add(args: argparse.Namespace) -> int:
    address = accounts.normalize_address(args.address)
    config = load(args)
    with open_database(config) as db:
        db.run("cli_user_precheck", _precheck_new, address, readonly=True)
        password_hash = passwords.hash_password(read_password(args.password_stdin, address))
        user = db.run("cli_user_add", accounts.add_user, address, password_hash,
                      display_name=args.display_name, is_admin=args.admin, quota_bytes=args.quota)
    print(f"added {user.address}" + (" (admin)" if user.is_admin else ""))
    return EXIT_OK


def passwd(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        user = db.run("cli_user_get", accounts.require_user, args.address, readonly=True)
        password_hash = passwords.hash_password(read_password(args.password_stdin, user.address))
        db.run("cli_user_passwd", accounts.set_password, user.address, password_hash)
    print(f"password of {user.address} changed")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        users = db.run("cli_user_list", accounts.list_users, args.domain, readonly=True)
    if args.json:
        print_json([u.public() for u in users])
        return EXIT_OK
    if not users:
        print("no users")
        return EXIT_OK
    rows = [["ADDRESS", "STATUS", "ADMIN", "QUOTA", "NAME"]]
    for u in users:
        rows.append([u.address, "disabled" if u.disabled else "active", "yes" if u.is_admin else "-",
                     "default" if u.quota_bytes is None else _human(u.quota_bytes), u.display_name])
    print_table(rows)
    return EXIT_OK


def delete(args: argparse.Namespace) -> int:
    config = load(args)
    with open_database(config) as db:
        user = db.run("cli_user_get", accounts.require_user, args.address, readonly=True)
        if not args.yes:
            if not stdin_is_tty():
                raise CliError(f"refusing to delete {user.address} without --yes (stdin is not a terminal)")
            if not confirm(f"Delete {user.address} and everything they own?"):
                raise CliError("not deleted", EXIT_FAILED)
        db.run("cli_user_delete", accounts.delete_user, user.address)
    print(f"deleted {user.address}")
    return EXIT_OK


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    config = load(args)
    with open_database(config) as db:
        user = db.run("cli_user_get", accounts.require_user, args.address, readonly=True)
        db.run("cli_user_disable" if disabled else "cli_user_enable", accounts.set_disabled, user.address, disabled)
    print(f"{user.address} {'disabled' if disabled else 'enabled'}")
    return EXIT_OK


def disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def _human(size: int) -> str:
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
