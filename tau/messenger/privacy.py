"""The user's conversations in a privacy export (metadata: E2E ciphertext is not the server's to
hand out) and erasure (what they sent); see :mod:`tau.privacy`."""

from __future__ import annotations

import json
from typing import Any

from tau.auth.accounts import User
from tau.messenger import privacy_store as rows
from tau.privacy import ExportContext, PrivacyHook


def export(ctx: ExportContext) -> None:
    convs = ctx.db.run("convs", rows.conversations, ctx.user.id, readonly=True)
    ctx.counts["conversations"] = len(convs)
    ctx.add_bytes("messenger/conversations.json", json.dumps(convs, indent=1).encode())


def purge(txn: Any, user: User) -> None:
    rows.purge_user(txn, user.id)


HOOK = PrivacyHook("messenger", export=export, purge=purge)
