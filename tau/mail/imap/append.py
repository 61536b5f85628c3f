"""APPEND (RFC 3501 §6.3.11) with flags and internal date, APPENDUID (RFC 4315 §3), TRYCREATE.

The message arrives as one literal, already bounded by ``[limits] message_size`` in the framing
layer (``NO [TOOBIG]`` before a byte is stored, RFC 7888 §4 / RFC 4469 style). The store parses
it once and keeps the parsed fields; malformed messages are stored as sent.
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MailboxNotFound

from . import rev2
from .base import AUTHED, SYNC_FULL, No, command
from .mailboxes import valid_name
from .parser import ParseError, Parser
from .store import SYSTEM


@command("APPEND", AUTHED, SYNC_FULL)
async def do_append(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.sp()
    flags: list[str] = []
    internal_date = None
    if p.peek() == ord("("):
        flags = p.flag_list()
        p.sp()
    if p.peek() == ord('"'):
        internal_date = p.date_time()
        p.sp()
    message = rev2.append_data(conn, p)
    p.end()
    for f in flags:
        if f.startswith("\\") and f not in SYSTEM and f != "\\Recent":
            raise ParseError(f"unknown system flag {f}")
    flags = list(dict.fromkeys(f for f in flags if f != "\\Recent"))
    if not message:
        raise No("Cannot append an empty message")
    if not valid_name(name):
        raise No("Mailbox doesn't exist", "TRYCREATE")
    try:
        done = await conn.store.append(conn.user, name, message, flags, internal_date)
    except MailboxNotFound:
        raise No("Mailbox doesn't exist", "TRYCREATE") from None
    sel = conn.selected
    if sel is not None and sel.name == done.mailbox:
        sel.touch()
    return f"[APPENDUID {done.uidvalidity} {done.uid}] Append completed"
