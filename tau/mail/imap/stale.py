"""FETCH of messages another session expunged while this one still shows them (issue 21).

A session keeps expunged messages in its view (``session.py``'s ``gone``) until it may send
``* n EXPUNGE``; like Dovecot, tau keeps them readable meanwhile: the store moves an expunged
message's row to ``mail_purge_pending`` and holds its blob until the purge, a grace period later
(``tau.mail.store.purge``). FETCH asks the store for the live messages first and for the rest of
the requested UIDs in that table. A message that is in neither (purged already), or whose blob
went between the two reads, makes the command end in ``NO [EXPUNGEISSUED]`` (RFC 5530) after
the messages that could be read: never a server error.
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MessageMeta

from .base import No

LOST = "Some of the requested messages no longer exist"


def expunge_issued() -> No:
    return No(LOST, "EXPUNGEISSUED")


async def complete(conn: Any, uids: list[int], metas: list[MessageMeta],
                   with_parsed: bool) -> tuple[list[MessageMeta], bool]:
    """``metas`` (live messages among ``uids``) plus the expunged ones not purged yet, ascending;
    and whether some of ``uids`` could not be found at all."""
    if len(metas) >= len(uids):
        return metas, False
    have = {m.uid for m in metas}
    missing = [u for u in uids if u not in have]
    more: list[MessageMeta] = await conn.store.fetch_expunged(conn.selected.mailbox_id, missing,
                                                              with_parsed=with_parsed)
    if not more:
        return metas, True
    return sorted([*metas, *more], key=lambda m: m.uid), len(more) < len(missing)
