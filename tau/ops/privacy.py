"""GDPR tooling: ``tau user export USER OUT.tar.gz`` and ``tau user delete --purge``.

Export (Art. 15/20, a portable copy): the account as JSON, every mail folder as an mboxrd file,
every calendar as one ``.ics``, the file tree as files, and messenger metadata (conversations,
members, message ids and times — E2E ciphertext is not the server's to hand out). Contents are
decrypted on the way out, streamed through temporary files, never held whole in memory.

Purge (Art. 17): one transaction drops the user's blob references and rows — including the rows
``ON DELETE SET NULL`` would otherwise keep (messages they sent in conversations, their outbound
queue) — then the blobs nothing references any more are deleted from the blob store: mail
(``mail_blobs`` refcounts, with their text/header index rows) and files (``file_blobs``).

Each domain does its own part through the hook in its ``privacy`` module (:mod:`tau.privacy`);
this module only runs them, whether or not the domain's service plugin is enabled.
"""

from __future__ import annotations

import importlib
import os
import tarfile
import time
from typing import Any

from tau.auth import accounts
from tau.auth.accounts import User
from tau.keys import open_private
from tau.privacy import BlobAccess, ExportContext, PrivacyHook, PurgeContext

#: the domains holding user data, in archive order; purge runs them in reverse, so the account
#: row (whose ``ON DELETE CASCADE`` takes the rest) goes last
PROVIDERS = ("tau.auth.privacy", "tau.mail.privacy", "tau.calendar.privacy", "tau.contacts.privacy",
             "tau.files.privacy",
             "tau.messenger.privacy")


def hooks() -> list[PrivacyHook]:
    return [importlib.import_module(name).HOOK for name in PROVIDERS]


def _keyring(config: Any) -> Any:
    from tau.atrest.keyring import Keyring
    from tau.cli.common import keys_for

    return Keyring(keys_for(config))


def export_user(config: Any, db: Any, address: str, out: str) -> dict[str, int]:
    """Write the user's archive; returns counts per kind."""
    blobs = BlobAccess(config)
    user = db.run("export_user", accounts.require_user, address, readonly=True)
    with os.fdopen(open_private(out + ".partial"), "wb") as raw, tarfile.open(fileobj=raw, mode="w|gz") as tar:
        ctx = ExportContext(db, user, tar, blobs, int(time.time()), keyring=_keyring(config))
        for hook in hooks():
            if hook.export is not None:
                hook.export(ctx)
    os.replace(out + ".partial", out)
    return ctx.counts


def _purge_rows(txn: Any, address: str, purges: list[PrivacyHook]) -> list[Any]:
    """Delete the user and everything that names them; returns each hook's state for collection."""
    user: User = accounts.require_user(txn, address)
    return [hook.purge(txn, user) if hook.purge is not None else None for hook in purges]


def purge_user(config: Any, db: Any, address: str) -> dict[str, int]:
    """Delete every trace of ``address``; returns how many blobs went."""
    blobs = BlobAccess(config)
    order = list(reversed(hooks()))
    states = db.run("purge_user", _purge_rows, address, order)
    ctx = PurgeContext(db, blobs)
    for hook, state in zip(order, states, strict=True):
        if hook.collect is not None:
            hook.collect(ctx, state)
    return {"mail_blobs": ctx.counts.get("mail_blobs", 0), "file_blobs": ctx.counts.get("file_blobs", 0)}
