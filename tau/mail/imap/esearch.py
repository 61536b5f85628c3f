"""ESEARCH result options (RFC 4731), SEARCHRES SAVE (RFC 5182) and their use by ESORT (RFC 5267).

``SEARCH RETURN (MIN MAX COUNT ALL SAVE) keys`` answers ``* ESEARCH (TAG "t") [UID] MIN n MAX n
COUNT n ALL set`` instead of ``* SEARCH``; ``RETURN ()`` means ``ALL``. Without matches MIN, MAX and
ALL are left out and COUNT is 0. SAVE keeps the result (as UIDs) on the selected mailbox for
``$``; alone it sends no ESEARCH; with only MIN and/or MAX it keeps just those messages (RFC 5182
§2.4). For SORT the matches are in sort order: MIN and MAX are the first and last sorted message
and ALL lists them in that order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .base import SYNC_FULL, SYNC_NOEXPUNGE, State, command
from .parser import ParseError, Parser
from .response import quote

OPTIONS = ("MIN", "MAX", "COUNT", "ALL", "SAVE")


def register(name: str, run: Callable[[Any, str, Parser, bool], Awaitable[str]]) -> None:
    """NAME and UID NAME in the selected state; ``run(conn, tag, parser, uid)`` does both."""

    async def numbered(conn: Any, tag: str, p: Parser) -> str:
        return await run(conn, tag, p, False)

    async def by_uid(conn: Any, tag: str, p: Parser) -> str:
        return await run(conn, tag, p, True)

    command(name, State.SELECTED, SYNC_NOEXPUNGE)(numbered)
    command("UID " + name, State.SELECTED, SYNC_FULL)(by_uid)


def return_options(p: Parser) -> list[str] | None:
    """``RETURN (opt ...) SP`` when present (``[]`` → ``["ALL"]``); None without RETURN."""
    if p.line[p.pos:p.pos + 7].upper() != b"RETURN ":
        return None
    p.keyword()
    p.sp()
    p.expect(b"(")
    options: list[str] = []
    while not p.take(b")"):
        if options:
            p.sp()
        word = p.keyword()
        if word not in OPTIONS:
            raise ParseError(f"unknown RETURN option {word}")
        if word not in options:
            options.append(word)
    p.sp()
    return options or ["ALL"]


def numbering(view: Any, uids: Sequence[int]) -> Callable[[int], int]:
    """UID → sequence number (0 when not in the view): one dict for big answers, else bisect."""
    if len(uids) < 64:
        seq_of: Callable[[int], int] = view.seq_of
        return seq_of
    seqs: dict[int, int] = {u: i for i, u in enumerate(view.uids, 1)}
    return lambda u: seqs.get(u, 0)


def numbers(view: Any, hits: list[int], uid: bool) -> list[int]:
    """What the client is sent for ``hits``: the UIDs, or their sequence numbers."""
    if uid:
        return hits
    seq = numbering(view, hits)
    return [seq(u) for u in hits]


def sequence_set(numbers: list[int]) -> str:
    """``1:3,7,5`` — runs of consecutive ascending numbers as ranges, the order kept."""
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)


def save(view: Any, options: list[str], hits: list[int]) -> None:
    """SEARCHRES: keep the result (or only its MIN/MAX) for ``$``."""
    if "SAVE" not in options:
        return
    kept = hits
    if not {"ALL", "COUNT"} & set(options) and {"MIN", "MAX"} & set(options) and hits:
        kept = ([hits[0]] if "MIN" in options else []) + ([hits[-1]] if "MAX" in options else [])
    view.saved = sorted(set(kept))


def respond(conn: Any, tag: str, view: Any, options: list[str], hits: list[int], uid: bool,
            modseq: int = 0) -> None:
    """Apply SAVE and send the ESEARCH response for ``hits`` (UIDs, in result order)."""
    save(view, options, hits)
    if options == ["SAVE"]:
        return
    numbered = numbers(view, hits, uid)
    line = f"ESEARCH (TAG {quote(tag)})" + (" UID" if uid else "")
    if numbered and "MIN" in options:
        line += f" MIN {numbered[0]}"
    if numbered and "MAX" in options:
        line += f" MAX {numbered[-1]}"
    if "COUNT" in options:
        line += f" COUNT {len(numbered)}"
    if numbered and "ALL" in options:
        line += " ALL " + sequence_set(numbered)
    if modseq:
        line += f" MODSEQ {modseq}"
    conn.untagged(line)
