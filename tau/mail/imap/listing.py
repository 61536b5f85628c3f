"""LIST and LSUB (RFC 3501 §6.3.8-9) with LIST-EXTENDED (RFC 5258) selection and return
options, SPECIAL-USE attributes (RFC 6154), CHILDREN (RFC 3348) and LIST-STATUS (RFC 5819).

Patterns: ``*`` matches anything, ``%`` anything but the ``/`` delimiter. Parents that do not
exist themselves but have children are listed as ``\\Noselect`` (``\\NonExistent`` in an
extended LIST or an IMAP4rev2 session) when a ``%`` pattern reaches them. The names considered
are the user's mailboxes, their ancestors, and subscriptions whose mailbox was deleted
(``\\NonExistent \\Subscribed``, RFC 5258 §3.1). With ``RECURSIVEMATCH``, or in LSUB, a name
that is not itself selected but has a subscribed descendant the pattern does not reach is listed
too: ``("CHILDINFO" ("SUBSCRIBED"))`` (RFC 5258 §3.5), ``\\Noselect`` in LSUB (RFC 3501 §6.3.9).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tau.mail.store.api import DELIMITER, MailboxInfo

from . import recent, rev2
from .base import AUTHED, Bad, command
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


@dataclass(frozen=True)
class ListQuery:
    """What one LIST or LSUB asks for."""

    verb: str                      # "LIST" or "LSUB"
    patterns: list[str]            # already joined with the reference
    only_subscribed: bool = False  # selection SUBSCRIBED (and LSUB)
    only_special: bool = False     # selection SPECIAL-USE
    recursive: bool = False        # RECURSIVEMATCH (and LSUB's parents rule)
    mark_subscribed: bool = False  # \\Subscribed in the attributes
    extended: bool = False         # \\NonExistent rather than \\Noselect
    status: tuple[str, ...] = ()   # RETURN (STATUS (...))
    utf8: bool = False             # mailbox names in UTF-8


@command("LIST", AUTHED)
async def do_list(conn: Any, tag: str, p: Parser) -> str:
    select: list[str] = []
    extended = conn.rev2  # RFC 9051 §6.3.9: \\NonExistent and the CHILDREN attributes always
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
                rev2.check_status_items(conn, status)
        extended = True
    p.end()
    if "RECURSIVEMATCH" in select and "SUBSCRIBED" not in select:
        raise Bad("RECURSIVEMATCH needs the SUBSCRIBED selection option (RFC 5258 §3)")
    if patterns == [""]:
        # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the reference's root
        conn.untagged('LIST (\\Noselect) "/" ""')
        return "List completed"
    subscribed = "SUBSCRIBED" in returns or "SUBSCRIBED" in select
    query = ListQuery("LIST", [_join(reference, pat) for pat in patterns], "SUBSCRIBED" in select,
                      "SPECIAL-USE" in select, "RECURSIVEMATCH" in select, subscribed, extended,
                      tuple(status), conn.utf8)
    boxes = await conn.store.list_mailboxes(conn.user)
    lost = await conn.store.lost_subscriptions(conn.user) if subscribed else []
    deleted = await conn.store.deleted_counts([b.id for b in boxes]) if "DELETED" in status else {}
    recents = await recent.list_counts(conn) if "RECENT" in status else {}
    conn.untagged(*render(boxes, lost, query, deleted, recents))
    return "List completed"


@command("LSUB", AUTHED)
async def do_lsub(conn: Any, tag: str, p: Parser) -> str:
    if conn.rev2:
        raise Bad("LSUB is not part of IMAP4rev2; use LIST (SUBSCRIBED)")  # RFC 9051 appendix E
    reference = p.list_mailbox()
    p.sp()
    pattern = p.list_mailbox()
    p.end()
    query = ListQuery("LSUB", [_join(reference, pattern)], only_subscribed=True, recursive=True,
                      utf8=conn.utf8)
    boxes = await conn.store.list_mailboxes(conn.user)
    lost = await conn.store.lost_subscriptions(conn.user)
    conn.untagged(*render(boxes, lost, query))
    return "Lsub completed"


def _ancestors(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def render(boxes: list[MailboxInfo], lost: list[str], q: ListQuery,
           deleted: Mapping[int, int] | None = None, recents: Mapping[int, int] | None = None) -> list[str]:
    """The untagged LIST/LSUB (and STATUS) lines answering ``q``."""
    regexes = [pattern_re(pat) for pat in q.patterns]

    def matches(name: str) -> bool:
        return any(r.match(name) for r in regexes)

    by_name = {b.name: b for b in boxes}
    with_children = {a for b in boxes for a in _ancestors(b.name)}
    subscribed = {b.name for b in boxes if b.subscribed} | set(lost)
    # names with a subscribed descendant the patterns do not reach (CHILDINFO / LSUB \\Noselect)
    childinfo = ({a for n in subscribed if not matches(n) for a in _ancestors(n)}
                 if q.recursive else set())
    names = set(by_name) | with_children | subscribed | childinfo
    lines: list[str] = []
    for name in sorted(names, key=lambda n: (n != "INBOX", n)):
        if not matches(name):
            continue
        box = by_name.get(name)
        picked = name in subscribed if q.only_subscribed else (box is not None or name in with_children)
        if q.only_special and (box is None or not box.special_use):
            picked = False
        if not picked and name not in childinfo:
            continue
        lines.append(_line(q, name, box, name in subscribed, picked, name in with_children,
                           name in childinfo))
        if q.status and box is not None:
            extra = {"DELETED": (deleted or {}).get(box.id, 0), "RECENT": (recents or {}).get(box.id, 0)}
            lines.append(status_line(box, list(q.status), q.utf8, extra))
    return lines


def _line(q: ListQuery, name: str, box: MailboxInfo | None, subscribed: bool, picked: bool,
          has_children: bool, childinfo: bool) -> str:
    attrs: list[str] = []
    if q.verb == "LSUB":
        if not picked:
            attrs.append("\\Noselect")  # RFC 3501 §6.3.9: a parent of subscribed mailboxes
    else:
        if box is None:
            attrs.append("\\NonExistent" if q.extended else "\\Noselect")
        elif box.special_use:
            attrs.append(box.special_use)
        if q.mark_subscribed and subscribed:
            attrs.append("\\Subscribed")
        attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
    line = f'{q.verb} {flag_list(attrs)} "{DELIMITER}" {mailbox_name(name, q.utf8)}'
    if childinfo and q.verb == "LIST":
        line += ' ("CHILDINFO" ("SUBSCRIBED"))'
    return line
