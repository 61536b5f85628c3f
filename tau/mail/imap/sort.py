"""SORT and UID SORT (RFC 5256 §3, DISPLAYFROM/DISPLAYTO of RFC 5957, ESORT's RETURN of RFC 5267).

``SORT [RETURN (...)] (criteria) charset search-keys``: the search keys are SEARCH's, the sorting is
the store's (``MailStore.sort``, one query). Keys: ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT (base
subject, RFC 5256 §2.1), TO, DISPLAYFROM, DISPLAYTO, each optionally after REVERSE; equal keys keep
mailbox order. Strings compare as casefolded Unicode code points (i;unicode-casemap in effect).
"""

from __future__ import annotations

from typing import Any

from . import esearch
from .esearch import numbers
from .parser import ParseError, Parser
from .search import compile_search, highest_modseq, visible

KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")


def sort_criteria(p: Parser) -> list[tuple[str, bool]]:
    """``(["REVERSE" SP] key *(SP ...))`` → ``[(key, reverse), ...]``."""
    p.expect(b"(")
    out: list[tuple[str, bool]] = []
    while True:
        word = p.keyword()
        reverse = word == "REVERSE"
        if reverse:
            p.sp()
            word = p.keyword()
        if word not in KEYS:
            raise ParseError(f"unknown sort key {word}")
        out.append((word.lower(), reverse))
        if p.take(b")"):
            return out
        p.sp()


async def run_sort(conn: Any, tag: str, p: Parser, uid: bool) -> str:
    view = conn.selected
    options = esearch.return_options(p)
    criteria = sort_criteria(p)
    p.sp()
    try:
        query, with_modseq = compile_search(p, view, charset_required=True)
        found = await conn.store.sort(view.mailbox_id, query, criteria) if view.uids else []
    except BaseException:
        if options is not None and "SAVE" in options:
            view.saved = []
        raise
    hits = visible(view, found)
    modseq = await highest_modseq(conn, hits) if with_modseq else 0
    if options is not None:
        esearch.respond(conn, tag, view, options, hits, uid, modseq)
    else:
        line = "SORT" + "".join(f" {n}" for n in numbers(view, hits, uid))
        conn.untagged(line + (f" (MODSEQ {modseq})" if modseq else ""))
    return ("UID SORT" if uid else "SORT") + " completed"


esearch.register("SORT", run_sort)
