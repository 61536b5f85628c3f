"""Command dispatch: the command table, state checks, mailbox news around a command (RFC 3501 §6, §7.4.1).

``protocol.py`` frames a command and hands its segments here; :func:`run` parses the name, checks
the connection state, reports pending changes of the selected mailbox before and after, runs the
handler and turns its outcome into the status of the tagged response.
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MailStoreError
from tau.storage.budget import StatementTimeout

from . import (  # noqa: F401
    append,
    auth,
    compress,
    copy,
    expunge,
    fetch,
    idle,
    listing,
    mailboxes,
    notify,
    notify_push,
    quota,
    search,
    sort,
    store,
    thread,
)
from .base import COMMANDS, SYNC_FULL, SYNC_NONE, Bad, No, State, store_error
from .parser import ParseError, Parser


async def run(conn: Any, tag: bytes, segments: list[bytes]) -> tuple[str, str] | None:
    """Run one command: ``(status, text)`` of its tagged response, None if the handler wrote its own."""
    await notify_push.settle(conn)  # an unsolicited push finishes before this command's output
    p = Parser(segments, utf8=conn.utf8)
    p.pos = len(tag)
    name = ""
    cmd = None
    try:
        p.sp()
        name = p.keyword()
        if name == "UID":
            p.sp()
            name = "UID " + p.keyword()
        conn.command_name = name
        conn.command_tag = tag.decode()
        cmd = COMMANDS.get(name)
        if cmd is None:
            raise Bad("Unknown command")
        if not (conn.state & cmd.states):
            raise Bad(_state_complaint(conn.state, cmd.states))
        if not p.at_end() or p.at_literal():
            p.sp()
        sel = conn.selected
        if sel is not None and (sel.dirty or sel.flags_dirty):
            await sync_after(conn, cmd.sync)  # report news first, so "1:*" includes it
        condstore_before = conn.condstore
        try:
            text = await cmd.handler(conn, tag.decode(), p)
        except MailStoreError as exc:
            if exc.code in ("invalid_search", "invalid_flag"):
                raise Bad(exc.message) from None
            raise store_error(exc) from None
        except StatementTimeout:
            raise No("The query took too long and was stopped; narrow it down", "LIMIT") from None
    except ParseError as exc:
        return "BAD", f"Error in IMAP command {name}: {exc}"
    except Bad as exc:
        return "BAD", exc.text
    except No as exc:
        await sync_after(conn, cmd.sync if cmd is not None else SYNC_NONE)
        return "NO", exc.text
    if text is None:
        return None
    sel = conn.selected
    if sel is not None and not condstore_before and conn.condstore and not name.endswith(("SELECT", "EXAMINE")):
        # RFC 7162 §3.1: the first CONDSTORE-enabling command reports the mailbox's HIGHESTMODSEQ
        conn.untagged(f"OK [HIGHESTMODSEQ {sel.modseq}] Highest")
    await sync_after(conn, cmd.sync)
    return "OK", text


async def sync_after(conn: Any, mode: str) -> None:
    """Report what changed in the selected mailbox (see ``session.py``)."""
    sel = conn.selected
    if sel is None or mode == SYNC_NONE or conn.state == State.LOGOUT:
        return
    if sel.dirty or sel.flags_dirty or (mode == SYNC_FULL and sel.gone):
        lines = await sel.sync(conn.store, mode == SYNC_FULL, conn.condstore)
        if conn.selected is sel:
            conn.untagged(*lines)


def _state_complaint(state: State, allowed: State) -> str:
    if state == State.NOT_AUTH:
        return "Not authenticated"
    if allowed == State.SELECTED:
        return "No mailbox selected"
    if allowed == State.NOT_AUTH:
        return "Already authenticated"
    return "Command not allowed now"
