"""COPY and MOVE with their UID forms (RFC 3501 §6.4.7, RFC 6851), answering with COPYUID
(UIDPLUS, RFC 4315 §3). A missing destination is ``NO [TRYCREATE]`` (RFC 3501 §6.4.7).

Destinations are always the authenticated user's own mailboxes: the store is called with
``conn.user``, so a name can never reach another account.

Messages another session expunged while this one still shows them (``stale.py``): COPY copies
them as long as they are readable (FETCH still serves them), since a copy of what the client
sees is what it asked for; MOVE refuses them, because their source is already gone (moved or
deleted by the other session) and moving them again would duplicate them. Either command is all
or nothing (RFC 3501 §6.4.7): when one message cannot be copied or moved, none is, and the
answer is ``NO [EXPUNGEISSUED]`` (RFC 5530).
"""

from __future__ import annotations

import functools
from typing import Any

from tau.mail.store.api import CopyResult, MailboxNotFound
from tau.mail.store.purge import ExpungeIssued

from . import stale
from .base import SYNC_FULL, No, by_number_and_uid
from .mailboxes import valid_name
from .parser import Parser
from .response import compress_uids


async def _copy(conn: Any, p: Parser, uid: bool, move: bool) -> str:
    seqset = p.seqset()
    p.sp()
    dest = p.mailbox()
    p.end()
    view = conn.selected
    if move and view.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    if not valid_name(dest):
        raise No("Mailbox doesn't exist", "TRYCREATE")
    uids = view.by_uid(seqset) if uid else view.by_seq(seqset)
    verb = ("UID " if uid else "") + ("MOVE" if move else "COPY")
    if not uids:
        return f"{verb} completed"
    try:
        op = conn.store.move if move else conn.store.copy
        result: CopyResult = await op(view.mailbox_id, uids, conn.user, dest, strict=True)
    except MailboxNotFound:
        raise No("Mailbox doesn't exist", "TRYCREATE") from None
    except ExpungeIssued:  # all or nothing: see the module docstring
        raise stale.expunge_issued() from None
    view.touch()  # the copies may land here; moved messages are gone
    code = ""
    if result.pairs:
        src = compress_uids([s for s, _ in result.pairs])
        dst = compress_uids([d for _, d in result.pairs])
        code = f"[COPYUID {result.uidvalidity} {src} {dst}] "
    if move:
        if code:
            conn.untagged("OK " + code + "Moved")  # RFC 6851 §4.3: before the EXPUNGEs
        return f"{verb} completed"
    return f"{code}{verb} completed"


by_number_and_uid("COPY", functools.partial(_copy, move=False), SYNC_FULL)
by_number_and_uid("MOVE", functools.partial(_copy, move=True), SYNC_FULL)
