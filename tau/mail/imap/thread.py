"""THREAD and UID THREAD (RFC 5256 §4): ``THREAD algorithm charset search-keys``.

Algorithms ORDEREDSUBJECT and REFERENCES (``tau.mail.store.threading``); the store reads the
keys of the matching messages in one query and threads them off the reactor. The answer is
``* THREAD (1 2 (3)(4))(5)``, or ``* THREAD`` alone when nothing matches.
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import Search
from tau.mail.store.threading import render

from . import esearch
from .esearch import numbering
from .parser import ParseError, Parser
from .search import compile_search

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


async def run_thread(conn: Any, tag: str, p: Parser, uid: bool) -> str:
    view = conn.selected
    algorithm = p.keyword()
    if algorithm not in ALGORITHMS:
        raise ParseError(f"unknown threading algorithm {algorithm}")
    p.sp()
    query, _ = compile_search(p, view, charset_required=True)
    top = view.uids[-1] if view.uids else 0
    query = Search(("and", query.tree, ("uid", [(1, top)])))  # only what this session has been told of
    shown = await conn.store.thread(view.mailbox_id, query, algorithm.lower()) if view.uids else []

    text = render(shown, (lambda u: u) if uid else numbering(view, view.uids))
    conn.untagged("THREAD" + (" " + text if text else ""))
    return ("UID THREAD" if uid else "THREAD") + " completed"


esearch.register("THREAD", run_thread)
