"""``tau user 2fa enable|disable|status ADDRESS``: TOTP two-factor authentication (tau.auth.totp).

``enable`` makes a new secret and prints the ``otpauth://`` URI (for a QR code or manual entry)
and ten one-time recovery codes — the only time they are shown. From then on the account
password alone logs in nowhere: protocol clients need app passwords (``tau apppassword add``).
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.auth import accounts, totp
from tau.cli.common import EXIT_OK, add_action, add_group, keys_for, load, run_store


def register(sub: Any) -> None:
    """Called by ``tau.cli.users.register`` with the ``user`` group's sub-parsers."""
    actions = add_group(sub, "2fa", "two-factor authentication (TOTP) for a user", dest="twofactor_action")
    for name, help_, handler in (("enable", "turn 2FA on: print the otpauth:// URI and recovery codes", enable),
                                 ("disable", "turn 2FA off (the account password works again)", disable),
                                 ("status", "show whether 2FA is on", status)):
        add_action(actions, name, help_, handler, ("address",))


def enable(args: argparse.Namespace) -> int:
    config = load(args)
    uri, codes = run_store(config, "cli_2fa_enable", totp.begin, keys_for(config), args.address, True)
    print(uri)
    print("recovery codes (each works once; store them safely):")
    for code in codes:
        print("  " + code)
    print("protocol clients (IMAP, SMTP, DAV) now need an app password: tau apppassword add")
    return EXIT_OK


def disable(args: argparse.Namespace) -> int:
    was = run_store(load(args), "cli_2fa_disable", totp.disable, args.address)
    print(f"2fa {'disabled' if was else 'was not enabled'} for {accounts.normalize_address(args.address)}")
    return EXIT_OK


def _enabled(txn: Any, address: str) -> bool:
    return totp.is_enabled(txn, accounts.require_user(txn, address).id)


def status(args: argparse.Namespace) -> int:
    on = run_store(load(args), "cli_2fa_status", _enabled, args.address, readonly=True)
    print("enabled" if on else "disabled")
    return EXIT_OK
