"""\\Recent for one session (RFC 3501 §2.3.2, §6.3.1, §7.3.2, §6.4.4).

A read-write SELECT claims the messages no session has seen yet, and so does every sync that
announces new messages (``tau.mail.store.recent``): whichever session claims a message first
(on any node) is the only one that sees it as recent. The session keeps its claimed UIDs as a
few inclusive ranges. EXAMINE claims nothing: it sees no recent messages (Dovecot likewise).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from .keywords import announce

RECENT = "\\Recent"
MAX_RANGES = 64  # beyond this the oldest ranges are dropped (merged claims stay few in practice)


async def claim(store: Any, view: Any, top: int, mark: int | None = None) -> bool:
    """Claim the unclaimed recent messages up to UID ``top`` for this session; False if there
    were none. ``mark``: the store's recent mark if just read (SELECT), to skip a query."""
    if view.readonly and not view.rev2 and mark is not None and 0 < mark <= top:
        view.recent = [(mark, top)]  # EXAMINE: shows what is recent without claiming it (as Dovecot)
        return False
    if view.readonly or view.rev2 or top <= 0 or (mark is not None and mark > top):
        return False
    first = await store.claim_recent(view.mailbox_id, top + 1)
    if first > top:
        return False
    ranges = view.recent or []
    if ranges and ranges[-1][1] + 1 >= first:
        ranges[-1] = (ranges[-1][0], top)
    else:
        ranges.append((first, top))
    view.recent = ranges[-MAX_RANGES:]
    return True


def count(view: Any) -> int:
    """Messages in the view that are recent for this session."""
    uids = view.uids
    return sum(bisect_right(uids, hi) - bisect_left(uids, lo) for lo, hi in view.recent or ())


async def status_count(conn: Any, mailbox_id: int) -> int:
    """STATUS RECENT: messages no session has claimed, plus this session's own if it has the
    mailbox selected."""
    unclaimed = await conn.store.recent_count(mailbox_id)
    view = conn.selected
    return unclaimed + (count(view) if view is not None and view.mailbox_id == mailbox_id else 0)


async def list_counts(conn: Any) -> dict[int, int]:
    """STATUS RECENT for every mailbox of the user at once (LIST-STATUS)."""
    counts = dict(await conn.store.recent_counts(conn.user))
    view = conn.selected
    if view is not None:
        counts[view.mailbox_id] = counts.get(view.mailbox_id, 0) + count(view)
    return counts


def is_recent(view: Any, uid: int) -> bool:
    return any(lo <= uid <= hi for lo, hi in view.recent or ())


async def after_exists(store: Any, view: Any, new: list[int], shared: Any = None) -> list[str]:
    """``n RECENT`` to follow an ``EXISTS`` for the messages ``new`` if this session claimed
    some of them (the count the client holds changes only then).

    With ``shared`` (IDLE, see session.py) one session per node makes the attempt for all the
    sessions idling on the mailbox, so a delivery costs one claim per node, not one per session.
    """
    if not new or view.readonly:
        return []
    top = new[-1]
    if shared is None:
        won = await claim(store, view, top)
    else:
        async def attempt() -> Any:
            return view if await claim(store, view, top) else None

        won = await shared(("recent", top), attempt) is view
    return [f"{count(view)} RECENT"] if won else []


def with_recent(view: Any, uid: int, flags: tuple[str, ...]) -> tuple[str, ...]:
    return (*flags, RECENT) if view.recent and is_recent(view, uid) else flags


def search_key(view: Any, word: str) -> tuple:
    """RECENT / NEW / OLD as a store search tree."""
    ranges = [(lo, hi) for lo, hi in view.recent or ()]
    recent: tuple = ("uid", ranges) if ranges else ("none",)
    if word == "RECENT":
        return recent
    if word == "NEW":
        return ("and", recent, ("flag", "\\Seen", False)) if ranges else recent
    return ("not", recent) if ranges else ("all",)


def before_fetch(conn: Any, metas: list[Any], changed: dict[int, Any]) -> tuple[list[Any], dict[int, Any]]:
    """FETCH's messages with this session's \\Recent added, after announcing any keyword they
    carry that the client has not seen in FLAGS (keywords.py)."""
    view = conn.selected
    conn.untagged(*announce(view, _all_flags(metas, changed)))
    if not view.recent:
        return metas, changed
    metas = [replace(m, flags=(*m.flags, RECENT)) if is_recent(view, m.uid) else m for m in metas]
    changed = {uid: (with_recent(view, uid, f), ms) for uid, (f, ms) in changed.items()}
    return metas, changed


def _all_flags(metas: list[Any], changed: dict[int, Any]) -> Iterable[str]:
    for m in metas:
        yield from m.flags
    for f, _ in changed.values():
        yield from f
