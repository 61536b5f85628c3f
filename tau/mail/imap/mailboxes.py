"""Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, STATUS
(RFC 3501 §6.3, RFC 7162 §3.1.2 HIGHESTMODSEQ and §3.2.5 QRESYNC, RFC 8438 STATUS=SIZE). LIST/LSUB are in
``listing.py``.

Every name is looked up in the authenticated user's own namespace: the store is always asked with
``conn.user``, so ``~bob/INBOX``, ``../bob`` or ``#shared/x`` are just (missing) names of this
user's; malformed paths are refused before the store sees them.
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MailboxInfo, MailboxNotFound, Search

from . import keywords, qresync, quota_status, recent, rev2, special_use
from .base import AUTHED, SYNC_NONE, No, command
from .parser import ParseError, Parser
from .response import mailbox_name
from .session import SelectedMailbox

STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED")
MAX_NAME = 512


def valid_name(name: str) -> bool:
    """A personal mailbox path: no empty or dot components, no wildcards or controls."""
    if not name or len(name) > MAX_NAME:
        return False
    if any(ord(c) < 0x20 or c == "\x7f" for c in name) or "*" in name or "%" in name:
        return False
    parts = name.split("/")
    return all(part and part.strip() == part and part not in (".", "..") for part in parts)


async def lookup(conn: Any, name: str) -> MailboxInfo:
    """The user's mailbox called ``name`` or ``NO [NONEXISTENT]``."""
    info = await conn.store.get_mailbox(conn.user, name) if valid_name(name) else None
    if info is None:
        raise No("Mailbox doesn't exist", "NONEXISTENT")
    return info


# -- SELECT / EXAMINE --------------------------------------------------------------------------------
async def _select(conn: Any, p: Parser, readonly: bool) -> str:
    name = p.mailbox()
    resync = qresync.parse_select_params(conn, p) if p.take(b" ") else None
    p.end()
    if conn.selected is not None:  # RFC 7162 §3.2.11, RFC 9051 §7.1: responses before this were the old mailbox's
        conn.untagged("OK [CLOSED] Previous mailbox closed")
    conn.select(None)  # RFC 3501 §6.3.1: even a failed SELECT leaves no mailbox selected
    info = await lookup(conn, name)
    view = SelectedMailbox(info.id, info.name, (), info.uidvalidity, info.highestmodseq, readonly)
    view.qresync, view.rev2 = conn.qresync, conn.rev2
    conn.select(view)  # watch first, so nothing committed from here on is missed
    uids = await conn.store.uids(info.id)
    view.uids.extend(uids)
    words, mark = await conn.store.select_state(info.id)
    await recent.claim(conn.store, view, uids[-1] if uids else 0, mark)
    uidnext = max(info.uidnext, uids[-1] + 1 if uids else 1)
    lines = keywords.selected_lines(view, words)
    lines += [f"{len(uids)} EXISTS", f"{recent.count(view)} RECENT"]
    if info.unseen:
        if info.unseen >= len(uids):  # all unseen: no need to ask
            first = 1 if uids else 0
        else:
            unseen = await conn.store.search(info.id, Search(("flag", "\\Seen", False)))
            first = view.seq_of(unseen[0]) if unseen else 0
        if first:
            lines.append(f"OK [UNSEEN {first}] First unseen")
    lines += [f"OK [UIDVALIDITY {info.uidvalidity}] UIDs valid", f"OK [UIDNEXT {uidnext}] Predicted next UID"]
    lines.append(f"OK [HIGHESTMODSEQ {info.highestmodseq}] Highest" if info.highestmodseq
                 else "OK [NOMODSEQ] No permanent modsequences")
    if conn.rev2:
        lines.append(rev2.select_list(info))
    if resync is not None:
        lines += await qresync.after_select(conn, view, uidnext, resync)
    conn.untagged(*lines)
    return ("[READ-ONLY] Examine" if readonly else "[READ-WRITE] Select") + " completed"


@command("SELECT", AUTHED, SYNC_NONE)
async def do_select(conn: Any, tag: str, p: Parser) -> str:
    return await _select(conn, p, readonly=False)


@command("EXAMINE", AUTHED, SYNC_NONE)
async def do_examine(conn: Any, tag: str, p: Parser) -> str:
    return await _select(conn, p, readonly=True)


# -- CREATE / DELETE / RENAME ----------------------------------------------------------------------
@command("CREATE")
async def do_create(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    use = special_use.create_params(p) if p.take(b" ") else None  # RFC 6154 §3
    p.end()
    if name.endswith("/"):  # RFC 3501 §6.3.3: a trailing delimiter declares a future parent
        name = name[:-1]
    if name == "INBOX":
        raise No("INBOX always exists", "ALREADYEXISTS")
    if not valid_name(name):
        raise No("Invalid mailbox name", "CANNOT")
    if use is None:
        await conn.store.create_mailbox(conn.user, name)
    else:
        await special_use.create(conn, name, use)
    return "Create completed"


@command("DELETE")
async def do_delete(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.end()
    if name == "INBOX":
        raise No("INBOX cannot be deleted", "CANNOT")
    info = await lookup(conn, name)
    await conn.store.delete_mailbox(conn.user, info.name)
    if conn.selected is not None and conn.selected.mailbox_id == info.id:
        conn.select(None)
    return "Delete completed"


@command("RENAME")
async def do_rename(conn: Any, tag: str, p: Parser) -> str:
    old = p.mailbox()
    p.sp()
    new = p.mailbox().rstrip("/")
    p.end()
    info = await lookup(conn, old)
    if not valid_name(new):
        raise No("Invalid mailbox name", "CANNOT")
    if new == "INBOX" or (await conn.store.get_mailbox(conn.user, new)) is not None:
        raise No("Mailbox already exists", "ALREADYEXISTS")
    await conn.store.rename_mailbox(conn.user, info.name, new)
    sel = conn.selected
    if sel is not None and sel.mailbox_id == info.id and info.name != "INBOX":
        sel.name = new
    return "Rename completed"


# -- SUBSCRIBE / UNSUBSCRIBE -----------------------------------------------------------------------
@command("SUBSCRIBE")
async def do_subscribe(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.end()
    info = await lookup(conn, name)
    await conn.store.subscribe(conn.user, info.name, True)
    return "Subscribe completed"


@command("UNSUBSCRIBE")
async def do_unsubscribe(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.end()
    if valid_name(name):
        try:
            await conn.store.subscribe(conn.user, name, False)
        except MailboxNotFound:
            pass  # RFC 3501 §6.3.7: unsubscribing a name that no longer exists is fine
    return "Unsubscribe completed"


# -- STATUS ------------------------------------------------------------------------------------------
def status_items(p: Parser, allowed: tuple[str, ...] = STATUS_ITEMS) -> list[str]:
    p.expect(b"(")
    items = []
    while True:
        item = p.keyword()
        if item not in allowed:
            raise ParseError(f"unknown STATUS item {item}")
        items.append(item)
        if p.take(b")"):
            return items
        p.sp()


def status_line(info: MailboxInfo, items: list[str], utf8: bool = False,
                extra: dict[str, int] | None = None) -> str:
    """``extra``: items the mailbox row does not hold (RECENT, DELETED, DELETED-STORAGE, APPENDLIMIT)."""
    values = {
        "MESSAGES": info.messages, "RECENT": 0, "UIDNEXT": info.uidnext, "UIDVALIDITY": info.uidvalidity,
        "UNSEEN": info.unseen, "HIGHESTMODSEQ": info.highestmodseq, "SIZE": info.size,
    } | (extra or {})
    return f"STATUS {mailbox_name(info.name, utf8)} (" + " ".join(f"{i} {values[i]}" for i in items) + ")"


@command("STATUS")
async def do_status(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.sp()
    items = status_items(p, STATUS_ITEMS + quota_status.STATUS_ITEMS)
    p.end()
    rev2.check_status_items(conn, items)
    info = await lookup(conn, name)
    if "HIGHESTMODSEQ" in items:
        conn.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    extra = await quota_status.status_values(conn, info, items)
    if "RECENT" in items:
        extra["RECENT"] = await recent.status_count(conn, info.id)
    conn.untagged(status_line(info, items, conn.utf8, extra))
    return "Status completed"
