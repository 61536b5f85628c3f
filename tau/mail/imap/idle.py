"""IDLE (RFC 2177): after ``+ idling`` the server pushes EXISTS / EXPUNGE / FETCH FLAGS for the
selected mailbox as ``mailbox.changed`` events arrive on the bus, until the client sends DONE.

Events only mark the session's view dirty; one reconciliation runs at a time per connection and
reruns while more events came in meanwhile, so a burst of deliveries costs a few store queries.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from .base import AUTHED, SYNC_FULL, Bad, command
from .parser import Parser

log = Logger(namespace="tau.mail.imap")


@command("IDLE", AUTHED, SYNC_FULL)
async def do_idle(conn: Any, tag: str, p: Parser) -> str | None:
    p.end()
    conn.write(b"+ idling\r\n")
    conn.idling = True
    if conn.selected is not None:
        conn.selected.touch()  # catch up before waiting
        notify(conn)
    try:
        line = await conn.read_line()
    except ConnectionError:
        return None
    finally:
        conn.idling = False
    pending = conn.idle_push
    if pending is not None:
        await pending  # its EXPUNGEs must precede our tagged OK (RFC 3501 §7.4.1)
    if line.strip().upper() != b"DONE":
        raise Bad("Expected DONE to end IDLE")
    return "Idle completed"


def notify(conn: Any) -> None:
    """Something changed in the selected mailbox: push it now if the client is idling."""
    if not conn.idling or conn.idle_push is not None or conn.selected is None:
        return
    d = defer.ensureDeferred(_push(conn))
    if conn.idle_push is None and not d.called:
        conn.idle_push = d


async def _push(conn: Any) -> None:
    try:
        while conn.idling and conn.selected is not None and (conn.selected.dirty or conn.selected.flags_dirty):
            view = conn.selected
            mailbox_id = view.mailbox_id

            def shared(key: tuple, query: Any, mailbox_id: int = mailbox_id) -> Any:
                return conn.factory.shared(mailbox_id, key, query)

            lines = await view.sync(conn.store, True, conn.condstore, shared=shared)
            if conn.selected is view:
                conn.untagged(*lines)
    except Exception:  # noqa: BLE001 - a failed push must not break the connection
        log.failure("IDLE update failed user={user}", user=conn.user)
    finally:
        conn.idle_push = None
