"""NOTIFY delivery (RFC 5465 §5): unsolicited STATUS, LIST and selected-mailbox responses.

Notifications are written only between commands (or during IDLE), never in the middle of a
command's output: a push that is under way makes the next command wait for it (:func:`settle`),
and news that arrives while a command runs is pushed when it completes (:func:`command_done`).
STATUS is coalesced per mailbox, so a burst of deliveries costs one row read per mailbox, shared
by every session of the user that waits for it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from . import fetch
from .base import State
from .mailboxes import status_line
from .parser import Parser
from .response import mailbox_name

log = Logger(namespace="tau.mail.imap")

#: queued STATUS mailboxes + LIST lines per connection before ``[NOTIFICATIONOVERFLOW]`` (§5.8)
MAX_PENDING = 1000


def status_items(conn: Any) -> list[str]:
    """MessageNew needs MESSAGES UIDNEXT UIDVALIDITY, FlagChange HIGHESTMODSEQ with CONDSTORE (§3, §5)."""
    return ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"] + (["HIGHESTMODSEQ"] if conn.condstore else [])


def list_line(conn: Any, action: str, name: str, old: str, subscribed: bool) -> str:
    """The LIST response for a MailboxName / SubscriptionChange event (§5.4, §5.5)."""
    attrs = ["\\NonExistent"] if action == "delete" else []
    if subscribed and action != "delete":
        attrs.append("\\Subscribed")
    line = f'LIST ({" ".join(attrs)}) "/" {mailbox_name(name, conn.utf8)}'
    if action == "rename":
        line += f' ("OLDNAME" ({mailbox_name(old, conn.utf8)}))'
    return line


def _due(conn: Any) -> bool:
    spec = conn.notify_spec
    if spec is None:
        return False
    return bool(spec.pending or spec.lines or (spec.selected_due and conn.selected is not None))


def kick(conn: Any) -> None:
    """Start a push now unless one runs, or a command runs (it is pushed when that completes)."""
    if conn.notify_task is not None or not _due(conn) or conn.state == State.LOGOUT:
        return
    if conn.busy() and not conn.idling:
        return
    d = defer.ensureDeferred(_push(conn))
    if not d.called:
        conn.notify_task = d


def command_done(conn: Any) -> None:
    if conn.notify_spec is not None:
        kick(conn)


async def settle(conn: Any) -> None:
    """A command waits for a push under way, so their responses never interleave."""
    while conn.notify_task is not None:
        await conn.notify_task


async def _push(conn: Any) -> None:
    try:
        while _due(conn):
            spec = conn.notify_spec
            lines, spec.lines = spec.lines, []
            pending, spec.pending = spec.pending, {}
            if spec.selected_due:
                spec.selected_due = False
                if not conn.idling:  # IDLE pushes the selected mailbox itself (idle.py)
                    await _selected(conn, spec)
            lines += await _statuses(conn, pending)
            if conn.notify_spec is spec:
                conn.untagged(*lines)
    except Exception:  # noqa: BLE001 - a failed push must not break the connection
        log.failure("NOTIFY push failed user={user}", user=conn.user)
    finally:
        conn.notify_task = None


async def _statuses(conn: Any, pending: dict[int, str]) -> list[str]:
    user, store, items = conn.user, conn.store, status_items(conn)
    lines = []
    for mailbox_id in pending:
        if conn.selected is not None and conn.selected.mailbox_id == mailbox_id:
            continue

        def query(mailbox_id: int = mailbox_id) -> Any:
            return store.get_mailbox_by_id(user, mailbox_id)

        info = await conn.factory.shared(mailbox_id, ("notify", user), query)
        if info is not None:
            lines.append(status_line(info, items, conn.utf8))
    return lines


async def _selected(conn: Any, spec: Any) -> None:
    """EXISTS / EXPUNGE / FETCH FLAGS for the selected mailbox, as IDLE sends them (idle.py)."""
    view = conn.selected
    if view is None:
        return
    last = view.uids[-1] if view.uids else 0
    mailbox_id = view.mailbox_id

    def shared(key: tuple, query: Any) -> Any:
        return conn.factory.shared(mailbox_id, key, query)

    lines = await view.sync(conn.store, not spec.delayed, conn.condstore, shared=shared)
    if conn.selected is not view:
        return
    conn.untagged(*lines)
    new = [u for u in view.uids if u > last]
    if new and spec.fetch_atts and not view.is_gone(new[0]):
        head = b"N UID FETCH "
        p = Parser([head + f"{new[0]}:{new[-1]}".encode() + b" " + spec.fetch_atts], utf8=conn.utf8)
        p.pos = len(head)
        await fetch.run_fetch(conn, p, True)
