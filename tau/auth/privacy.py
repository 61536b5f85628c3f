"""The account's part of a privacy export (``account.json``) and erasure (the ``users`` row, whose
``ON DELETE CASCADE`` takes mailboxes, files, calendars, tokens...); see :mod:`tau.privacy`."""

from __future__ import annotations

import json
from typing import Any

from tau.auth import accounts
from tau.auth.accounts import User
from tau.privacy import ExportContext, PrivacyHook


def export(ctx: ExportContext) -> None:
    info = ctx.user.public()
    info["aliases"] = [a["address"] for a in ctx.db.run("aliases", accounts.list_aliases, None, readonly=True)
                       if a["destination"] == ctx.user.address]
    info["app_passwords"] = ctx.db.run("app_pw", accounts.list_app_passwords, ctx.user.address, readonly=True)
    ctx.add_bytes("account.json", json.dumps(info, indent=1).encode())


def purge(txn: Any, user: User) -> None:
    accounts.delete_user(txn, user.address)  # cascades: mailboxes, messages, files, calendars, tokens...


HOOK = PrivacyHook("account", export=export, purge=purge)
