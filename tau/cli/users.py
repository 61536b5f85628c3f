"""``tau user add|passwd|list|delete|disable|enable|set``: local accounts (INTERFACE.md, Accounts).

Passwords come from stdin (``--password-stdin``, for scripts) or are typed twice on a terminal;
they never appear on the command line, where ``ps`` and shell history would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from tau.auth import accounts, passwords
from tau.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_action,
    add_group,
    load,
    open_database,
    open_user,
    print_listing,
    require_confirmation,
    run_store,
    stdin_is_tty,
)
from tau.config import parse_size as config_size


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "user", "add, list, change and delete users")
    p = add_action(sub, "add", "add a user (the domain must exist)", add, ("address",))
    _password_argument(p)
    p.add_argument("--display-name", default="", metavar="NAME")
    p.add_argument("--admin", action="store_true", help="may administer the server")
    p.add_argument("--quota", type=parse_size, metavar="BYTES",
                   help="storage quota (e.g. 5000000000 or 5G; default: [limits] quota_bytes)")
    _password_argument(add_action(sub, "passwd", "set a user's password", passwd, ("address",)))
    p = add_action(sub, "list", "list users", list_, json=True)
    p.add_argument("--domain", metavar="D", help="only users of this domain")
    p = add_action(sub, "delete", "delete a user and the aliases pointing to them", delete, ("address",))
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_action(sub, "disable", "refuse every login of a user, keep their data", disable, ("address",))
    add_action(sub, "enable", "allow a disabled user to log in again", enable, ("address",))
    p = add_action(sub, "set", "change a user's quota, admin role or login state", set_, ("address",))
    p.add_argument("--quota", type=parse_quota, default=..., metavar="SIZE",
                   help="storage quota: bytes or 512K, 50M, 5G (0: none; `default`: [limits] quota_bytes)")
    p.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None,
                   help="may administer the server (--no-admin: may not)")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--disable", dest="disabled", action="store_const", const=True, default=None,
                       help="refuse every login, keep the data")
    state.add_argument("--enable", dest="disabled", action="store_const", const=False, help="allow logins again")
    p.add_argument("--display-name", default=None, metavar="NAME")

    from tau.cli import privacy, sendas, twofactor  # issue 10: 2fa, export, delete --purge; 13: send-as

    twofactor.register(sub)
    privacy.register(sub)
    sendas.register(sub)


def _password_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from stdin (one trailing newline is removed)")


def parse_size(text: str) -> int:
    """Bytes, or a number with K/M/G/T (binary multiples): for argparse ``type=``."""
    try:
        return config_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}") from None


def parse_quota(text: str) -> int | None:
    """``--quota`` of ``user set``: a size, or ``default`` for [limits] quota_bytes."""
    return None if text.strip().lower() == "default" else parse_size(text)


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
    with open_user(load(args), args.address) as (db, user):
        password_hash = passwords.hash_password(read_password(args.password_stdin, user.address))
        db.run("cli_user_passwd", accounts.set_password, user.address, password_hash)
    print(f"password of {user.address} changed")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    users = run_store(load(args), "cli_user_list", accounts.list_users, args.domain, readonly=True)
    return print_listing(args, users, "no users", ["ADDRESS", "STATUS", "ADMIN", "QUOTA", "NAME"], _row,
                         public=lambda u: u.public())


def _row(u: accounts.User) -> list[str]:
    return [u.address, "disabled" if u.disabled else "active", "yes" if u.is_admin else "-",
            "default" if u.quota_bytes is None else _human(u.quota_bytes), u.display_name]


def delete(args: argparse.Namespace) -> int:
    with open_user(load(args), args.address) as (db, user):
        require_confirmation(args.yes, f"refusing to delete {user.address}",
                             f"Delete {user.address} and everything they own?")
        db.run("cli_user_delete", accounts.delete_user, user.address)
    print(f"deleted {user.address}")
    return EXIT_OK


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    with open_user(load(args), args.address) as (db, user):
        db.run("cli_user_disable" if disabled else "cli_user_enable", accounts.set_disabled, user.address, disabled)
    print(f"{user.address} {'disabled' if disabled else 'enabled'}")
    return EXIT_OK


def disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def set_(args: argparse.Namespace) -> int:
    if args.quota is ... and args.admin is None and args.disabled is None and args.display_name is None:
        raise CliError("nothing to change: give --quota, --admin/--no-admin, --disable/--enable"
                       " or --display-name", EXIT_USAGE)
    with open_user(load(args), args.address) as (db, user):
        db.run("cli_user_set", _apply, user, args)
        changed = db.run("cli_user_get", accounts.require_user, user.address, readonly=True)
    print(f"{changed.address}: {'disabled' if changed.disabled else 'active'}, "
          f"{'admin' if changed.is_admin else 'not admin'}, quota "
          f"{'default' if changed.quota_bytes is None else _human(changed.quota_bytes)}")
    return EXIT_OK


def _apply(txn: Any, user: accounts.User, args: argparse.Namespace) -> None:
    accounts.set_profile(txn, user.id, is_admin=args.admin, display_name=args.display_name,
                         quota_bytes=args.quota)
    if args.disabled is not None and args.disabled != user.disabled:
        accounts.set_disabled(txn, user.address, args.disabled)


def _human(size: int) -> str:
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
