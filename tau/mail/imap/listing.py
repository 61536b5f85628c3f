"""LIST and LSUB (RFC 3501 §6.3.8-9) with LIST-EXTENDED (RFC 5258) selection and return
options, SPECIAL-USE attributes (RFC 6154), CHILDREN (RFC 3348) and LIST-STATUS (RFC 5819).

Patterns: ``*`` matches anything, ``%`` anything but the ``/`` delimiter. Parents that do not
exist themselves but have children are listed as ``\\Noselect`` (``\\NonExistent`` in an
extended LIST) when a ``%`` pattern reaches them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tau.mail.store.api import DELIMITER, MailboxInfo

from . import recent
from .base import AUTHED, command
from .mailboxes import status_items, status_line
from .parser import ParseError, Parser
from .response import flag_list, mailbox_name

_SELECT_OPTS = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_RETURN_OPTS = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"}


def pattern_re(pattern: str) -> re.Pattern[str]:
    """An IMAP LIST pattern as an anchored regex; the INBOX prefix matches in any case."""
    if pattern[:5].upper() == "INBOX" and (len(pattern) == 5 or pattern[5] in "/%*"):
        pattern = "INBOX" + pattern[5:]
    out = []
    for c in pattern:
        if c == "*":
            out.append(".*")
        elif c == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _join(reference: str, pattern: str) -> str:
    """RFC 3501 §6.3.8: the pattern is interpreted relative to the reference."""
    return pattern if not reference or pattern.startswith(DELIMITER) else reference + pattern


def _options(p: Parser, allowed: set[str], what: str = "LIST option") -> Iterator[str]:
    """The options of a parenthesized list, in order; the caller parses an option's argument."""
    p.expect(b"(")
    first = True
    while not p.take(b")"):
        if not first:
            p.sp()
        first = False
        opt = p.keyword()
        if opt not in allowed:
            raise ParseError(f"unknown {what} {opt}")
        yield opt


def _patterns(p: Parser) -> list[str]:
    if p.take(b"("):
        pats = [p.list_mailbox()]
        while p.take(b" "):
            pats.append(p.list_mailbox())
        p.expect(b")")
        return pats
    return [p.list_mailbox()]


@command("LIST", AUTHED)
async def do_list(conn: Any, tag: str, p: Parser) -> str:
    select: list[str] = []
    extended = False
    if p.peek() == ord("("):
        select = list(_options(p, _SELECT_OPTS))
        extended = True
        p.sp()
    reference = p.list_mailbox()
    p.sp()
    patterns = _patterns(p)
    extended = extended or len(patterns) > 1
    returns: list[str] = []
    status: list[str] = []
    if p.take(b" "):
        if p.keyword() != "RETURN":
            raise ParseError("expected RETURN")
        p.sp()
        for opt in _options(p, _RETURN_OPTS, "LIST return option"):
            returns.append(opt)
            if opt == "STATUS":
                p.sp()
                status = status_items(p)
        extended = True
    p.end()
    if patterns == [""]:
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the reference's root
        conn.untagged('LIST (\\Noselect) "/" ""')
        return "List completed"
    boxes = await conn.store.list_mailboxes(conn.user)
    lines = _render(boxes, reference, patterns, "LIST", "SUBSCRIBED" in select,
                    "SPECIAL-USE" in select, "SUBSCRIBED" in returns or "SUBSCRIBED" in select,
                    extended, status, await recent.list_counts(conn) if "RECENT" in status else None)
    conn.untagged(*lines)
    return "List completed"


@command("LSUB", AUTHED)
async def do_lsub(conn: Any, tag: str, p: Parser) -> str:
    reference = p.list_mailbox()
    p.sp()
    pattern = p.list_mailbox()
    p.end()
    boxes = await conn.store.list_mailboxes(conn.user)
    conn.untagged(*_render(boxes, reference, [pattern], "LSUB", True, False, False, False, []))
    return "Lsub completed"


def _render(boxes: list[MailboxInfo], reference: str, patterns: list[str], verb: str,
            only_subscribed: bool, only_special: bool, mark_subscribed: bool, extended: bool,
            status: list[str], recent_counts: dict[int, int] | None = None) -> list[str]:
    regexes = [pattern_re(_join(reference, pat)) for pat in patterns]
    by_name = {b.name: b for b in boxes}
    parents = {b.name.rsplit(DELIMITER, 1)[0] for b in boxes if DELIMITER in b.name}
    ancestors: set[str] = set()
    for b in boxes:
        parts = b.name.split(DELIMITER)
        for i in range(1, len(parts)):
            ancestors.add(DELIMITER.join(parts[:i]))
    names = sorted(set(by_name) | (ancestors - set(by_name)), key=lambda n: (n != "INBOX", n))
    lines: list[str] = []
    for name in names:
        if not any(r.match(name) for r in regexes):
            continue
        box = by_name.get(name)
        attrs: list[str] = []
        if box is None:
            if only_subscribed or only_special:
                continue
            attrs.append("\\NonExistent" if extended else "\\Noselect")
        else:
            if only_subscribed and not box.subscribed:
                continue
            if only_special and not box.special_use:
                continue
            if box.special_use and verb == "LIST":
                attrs.append(box.special_use)
            if mark_subscribed and box.subscribed:
                attrs.append("\\Subscribed")
        if verb == "LIST":
            attrs.append("\\HasChildren" if name in parents or name in ancestors else "\\HasNoChildren")
        lines.append(f'{verb} {flag_list(attrs)} "{DELIMITER}" {mailbox_name(name)}')
        if status and box is not None:
            lines.append(status_line(box, status, (recent_counts or {}).get(box.id, 0)))
    return lines
