"""Leaving and cleaning a mailbox: CHECK, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE
(RFC 3501 §6.4.1-3, RFC 3691 UNSELECT, RFC 4315 §2.1 UID EXPUNGE).

EXPUNGE responses come from the session's reconciliation (``session.py``), so messages removed
by this command and by other sessions are reported the same way, highest number first.
CLOSE expunges silently (§6.4.2: no EXPUNGE responses).
"""

from __future__ import annotations

from typing import Any

from .base import SYNC_FULL, SYNC_NONE, No, State, command
from .parser import Parser


@command("CHECK", State.SELECTED, SYNC_FULL)
async def do_check(conn: Any, tag: str, p: Parser) -> str:
    p.end()
    conn.selected.touch()
    return "Check completed"


@command("CLOSE", State.SELECTED, SYNC_NONE)
async def do_close(conn: Any, tag: str, p: Parser) -> str:
    p.end()
    view = conn.selected
    conn.select(None)
    if not view.readonly:
        await conn.store.expunge(view.mailbox_id)
    return "Close completed"


@command("UNSELECT", State.SELECTED, SYNC_NONE)
async def do_unselect(conn: Any, tag: str, p: Parser) -> str:
    p.end()
    conn.select(None)
    return "Unselect completed"


@command("EXPUNGE", State.SELECTED, SYNC_FULL)
async def do_expunge(conn: Any, tag: str, p: Parser) -> str:
    p.end()
    view = conn.selected
    if view.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    await conn.store.expunge(view.mailbox_id)
    view.touch()
    return "Expunge completed"


@command("UID EXPUNGE", State.SELECTED, SYNC_FULL)
async def do_uid_expunge(conn: Any, tag: str, p: Parser) -> str:
    seqset = p.seqset()
    p.end()
    view = conn.selected
    if view.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    uids = view.by_uid(seqset)
    if uids:
        await conn.store.expunge(view.mailbox_id, uids)
        view.touch()
    return "UID EXPUNGE completed"
