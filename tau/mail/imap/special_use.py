"""CREATE-SPECIAL-USE (RFC 6154 §3): ``CREATE name (USE (\\Archive))``.

A mailbox holds at most one special use here. ``\\Archive`` may be on several mailboxes (archive
folders by year); ``\\Sent``, ``\\Drafts``, ``\\Trash`` and ``\\Junk`` name the one mailbox the
server files into, so asking for one another mailbox already has is ``NO [USEATTR]``, as are more
than one use, the virtual ``\\All`` / ``\\Flagged`` / ``\\Important`` (no such views here) and
unknown attributes; nothing is created then (§3: the server MUST NOT create the mailbox). A second
``\\Archive`` mailbox can be deleted again; the first one of each use cannot.
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import SpecialUseTaken

from .base import No
from .parser import ParseError, Parser

SUPPORTED = {"\\ARCHIVE": "\\Archive", "\\DRAFTS": "\\Drafts", "\\JUNK": "\\Junk", "\\SENT": "\\Sent",
             "\\TRASH": "\\Trash"}


def create_params(p: Parser) -> str | None:
    """After ``CREATE name SP``: ``"(" create-param *(SP create-param) ")"``; the one special use
    asked for, or None for ``USE ()``."""
    p.expect(b"(")
    uses: list[str] | None = None
    while True:
        param = p.keyword()
        if param != "USE" or uses is not None:
            raise ParseError(f"unsupported CREATE parameter {param}")
        p.sp()
        uses = p.flag_list()
        if p.take(b")"):
            break
        p.sp()
    if not uses:
        return None
    if len(set(u.upper() for u in uses)) > 1:
        raise No("A mailbox can have only one special use", "USEATTR")
    use = SUPPORTED.get(uses[0].upper())
    if use is None:
        raise No(f"Special use {uses[0][:40]} is not supported", "USEATTR")
    return use


async def create(conn: Any, name: str, use: str) -> None:
    try:
        await conn.store.create_mailbox(conn.user, name, use)
    except SpecialUseTaken as exc:
        raise No(exc.message, "USEATTR") from None
