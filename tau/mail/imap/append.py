"""APPEND (RFC 3501 §6.3.11) with flags and internal date, APPENDUID (RFC 4315 §3), TRYCREATE,
MULTIAPPEND (RFC 3502) and APPENDLIMIT (RFC 7889).

Each message arrives as one literal, already bounded by ``[limits] message_size`` in the framing
layer (``NO [TOOBIG]`` before a byte is stored, RFC 7888 §4 / RFC 4469 style); the same figure is
advertised as ``APPENDLIMIT=n``. The store parses each message once and keeps the parsed fields;
malformed messages are stored as sent. Several messages in one APPEND (MULTIAPPEND) are stored
in one transaction, all or none (over quota: ``NO [OVERQUOTA]`` and nothing is stored), and
answered with ``APPENDUID uidvalidity uid-set``. At most :data:`MAX_MESSAGES` per command; the
framing layer bounds their total size (``protocol.MAX_APPEND_TOTAL``).
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MailboxNotFound

from . import rev2
from .base import AUTHED, SYNC_FULL, No, command
from .mailboxes import valid_name
from .parser import ParseError, Parser
from .response import compress_uids
from .store import SYSTEM

MAX_MESSAGES = 1000


def append_limit(conn: Any) -> int:
    """``[limits] message_size``: the largest message APPEND takes (0: no limit)."""
    return int(conn.registry.config.limits.message_size or 0)


def _one_message(conn: Any, p: Parser) -> tuple[bytes, list[str], int | None]:
    """``[flag-list SP] [date-time SP] literal`` (RFC 3502 ``append-message``)."""
    flags: list[str] = []
    internal_date = None
    if p.peek() == ord("("):
        flags = p.flag_list()
        p.sp()
    if p.peek() == ord('"'):
        internal_date = p.date_time()
        p.sp()
    message = rev2.append_data(conn, p)
    for f in flags:
        if f.startswith("\\") and f not in SYSTEM and f != "\\Recent":
            raise ParseError(f"unknown system flag {f}")
    flags = list(dict.fromkeys(f for f in flags if f != "\\Recent"))
    return message, flags, internal_date


@command("APPEND", AUTHED, SYNC_FULL)
async def do_append(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.sp()
    messages = [_one_message(conn, p)]
    while p.take(b" "):
        if len(messages) >= MAX_MESSAGES:
            raise No(f"At most {MAX_MESSAGES} messages in one APPEND", "LIMIT")
        messages.append(_one_message(conn, p))
    p.end()
    if any(not raw for raw, _, _ in messages):
        raise No("Cannot append an empty message")
    if not valid_name(name):
        raise No("Mailbox doesn't exist", "TRYCREATE")
    try:
        if len(messages) == 1:
            raw, flags, when = messages[0]
            done = [await conn.store.append(conn.user, name, raw, flags, when)]
        else:
            done = await conn.store.append_many(conn.user, name, messages)
    except MailboxNotFound:
        raise No("Mailbox doesn't exist", "TRYCREATE") from None
    sel = conn.selected
    if sel is not None and sel.name == done[0].mailbox:
        sel.touch()
    return f"[APPENDUID {done[0].uidvalidity} {compress_uids([d.uid for d in done])}] Append completed"
