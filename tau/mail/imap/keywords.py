"""Keywords in FLAGS and PERMANENTFLAGS (RFC 3501 §7.2.6, §7.1), kept in step with FETCH.

SELECT/EXAMINE announce the mailbox's keywords (``tau.mail.store.keywords``). After that a
session learns of new ones two ways: the ``mailbox.changed`` event that created them carries
``keywords`` (so an idling client hears ``* FLAGS`` at once, from any session or node), and every
FETCH response this session is about to send is checked against what it announced — a keyword it
has not announced yet (an event still in flight, a message stored before the keyword list
existed) gets ``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` written first. Either way no FETCH ever
shows a keyword the client has not seen in FLAGS.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tau.mail.store.keywords import MAX_KEYWORDS
from tau.mail.store.names import SYSTEM_FLAGS

from .response import flag_list


def selected_lines(view: Any, words: Iterable[str]) -> list[str]:
    """The FLAGS and PERMANENTFLAGS untagged responses for SELECT/EXAMINE."""
    view.keywords = {w.lower(): w for w in words}
    return flags_lines(view)


def flags_lines(view: Any) -> list[str]:
    words = tuple(view.keywords.values())
    if view.readonly:
        permanent = "()"
    else:  # \* only while new keywords can still be created
        more = ("\\*",) if len(words) < MAX_KEYWORDS else ()
        permanent = flag_list((*SYSTEM_FLAGS, *words, *more))
    return ["FLAGS " + flag_list((*SYSTEM_FLAGS, *words)),
            f"OK [PERMANENTFLAGS {permanent}] Flags permitted"]


def announce(view: Any, flags: Iterable[str]) -> list[str]:
    """FLAGS/PERMANENTFLAGS lines if ``flags`` hold a keyword not announced yet, else none."""
    known = view.keywords
    fresh = False
    for f in flags:
        if not f.startswith("\\") and f.lower() not in known:
            known[f.lower()] = f
            fresh = True
    return flags_lines(view) if fresh else []


def note_event(view: Any, event: dict[str, Any]) -> None:
    """A ``mailbox.changed`` event that defined keywords: report them on the next sync."""
    words = event.get("keywords")
    if isinstance(words, list) and words:
        view.kw_pending = (view.kw_pending or []) + [w for w in words if isinstance(w, str)]


def pending_lines(view: Any) -> list[str]:
    """FLAGS lines for keywords learnt from events, once."""
    pending, view.kw_pending = view.kw_pending, None
    return announce(view, pending) if pending else []
