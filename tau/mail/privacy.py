"""The user's mail in a privacy export (one mboxrd file per folder) and erasure (messages, queue
and the blobs only they referenced); see :mod:`tau.privacy`."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from tau.auth.accounts import User
from tau.mail.store import privacy as rows
from tau.mail.store.blobrefs import collect as collect_blobs
from tau.mail.store.blobrefs import unreferenced
from tau.mail.store.context import StoreContext
from tau.privacy import ExportContext, PrivacyHook, PurgeContext, safe_name


def _mbox_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """mboxrd quoting (RFC 4155 + ``>From`` escaping), CRLF → LF, line by line."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r") + b"\n"
    if rest:
        yield rest.rstrip(b"\r") + b"\n"


def _quote(line: bytes) -> bytes:
    return b">" + line if re.match(rb"^>*From ", line) else line


def _store(blobs: Any) -> Any:
    return blobs.store(blobs.keys.blob_address_key)


def export(ctx: ExportContext) -> None:
    mail = _store(ctx.blobs)
    ctx.counts.update(folders=0, messages=0)
    for box_id, name in ctx.db.run("boxes", rows.mailboxes, ctx.keyring, ctx.user.id, readonly=True):
        messages = ctx.db.run("msgs", rows.message_blobs, box_id, readonly=True)
        with tempfile.TemporaryFile() as fh:
            for key, date in messages:
                fh.write(b"From MAILER-DAEMON " + time.asctime(time.gmtime(int(date))).encode() + b"\n")
                for line in _mbox_lines(mail.open(key)):
                    fh.write(_quote(line))
                fh.write(b"\n")
                ctx.counts["messages"] += 1
            ctx.add_file(f"mail/{safe_name(name)}.mbox", fh)
        ctx.counts["folders"] += 1
    export_sieve(ctx)


def export_sieve(ctx: ExportContext) -> None:
    """The user's Sieve scripts as ``mail/sieve/NAME.sieve`` (the active one also named in
    ``mail/sieve/ACTIVE``); the rows go with the account (``ON DELETE CASCADE``)."""
    from tau.mail.sieve import store as sieve_store

    ctx.counts["sieve_scripts"] = 0
    for name, active in ctx.db.run("sieve_export_list", sieve_store.list_scripts, ctx.user.address, readonly=True):
        script = ctx.db.run("sieve_export_get", sieve_store.get_script, ctx.keyring, ctx.user.address, name,
                            readonly=True)
        if script is None:
            continue
        ctx.add_bytes(f"mail/sieve/{safe_name(name)}.sieve", script.content.encode("utf-8"))
        if active:
            ctx.add_bytes("mail/sieve/ACTIVE", name.encode("utf-8") + b"\n")
        ctx.counts["sieve_scripts"] += 1


def purge(txn: Any, user: User) -> list[str]:
    return rows.purge_user(txn, user.id)


def collect(ctx: PurgeContext, orphans: list[str]) -> None:
    """The blobs the purge left unreferenced, then any other left at zero references."""
    store = StoreContext(blobs=_store(ctx.blobs), bus=None, default_quota=0)
    deleted = len(ctx.db.run("purge_mail_blobs", collect_blobs, store, orphans)) if orphans else 0
    leftover = ctx.db.run("purge_unreferenced", unreferenced, 10_000, readonly=True)
    if leftover:
        deleted += len(ctx.db.run("purge_mail_sweep", collect_blobs, store, leftover))
    ctx.counts["mail_blobs"] = deleted


HOOK = PrivacyHook("mail", export=export, purge=purge, collect=collect)
