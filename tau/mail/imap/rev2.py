"""Session modes switched on by ENABLE: UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051).

The server speaks IMAP4rev1 until the client sends ``ENABLE IMAP4rev2`` (RFC 9051 appendix A),
and modified UTF-7 mailbox names until ``ENABLE UTF8=ACCEPT`` or ``ENABLE IMAP4rev2``. Both are
flags on the connection (``conn.utf8``, ``conn.rev2``) that the command modules consult:

- ``conn.utf8``: mailbox names are read and written as UTF-8, ``&`` included (``Parser.utf8``,
  ``response.mailbox_name``); APPEND accepts ``UTF8 (~{n}...)`` (:func:`append_data`).
- ``conn.rev2`` (implies ``conn.utf8``): no ``* n RECENT``, no ``\\Recent`` and no
  ``[UNSEEN n]`` in untagged responses (:func:`scrub`, applied by ``IMAPConnection.untagged``);
  SELECT/EXAMINE also send the mailbox's LIST response (:func:`select_list`) and, when they
  replace a selected mailbox, ``* OK [CLOSED]`` first; SEARCH takes ``RETURN (MIN MAX ALL COUNT
  SAVE)`` and answers ``* ESEARCH`` (:func:`esearch`); ``$`` names the saved result (SEARCHRES,
  ``Parser.saved``); STATUS has DELETED and no RECENT; LIST marks non-existent names
  ``\\NonExistent``; LSUB is gone (``BAD``).

Kept from rev1 although RFC 9051 dropped them, since they harm no rev2 client: CHECK, the SEARCH
keys RECENT/NEW/OLD (nothing is recent here), FETCH RFC822*.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tau.mail.store.api import DELIMITER, MailboxInfo

from .parser import ParseError, Parser
from .response import compress_uids, flag_list, mailbox_name, quote

#: what ENABLE can switch on here besides CONDSTORE (auth.py)
ENABLEABLE = ("UTF8=ACCEPT", "IMAP4rev2")
ENABLEABLE_UPPER = frozenset(c.upper() for c in ENABLEABLE)

_REMOVED = re.compile(r"\d+ RECENT\Z|OK \[UNSEEN \d+\]")
_FLAGS = re.compile(r"(FLAGS \()([^)]*)(\))")


def enable(conn: Any, cap: str) -> bool:
    """Switch on ``cap`` (upper-cased keyword); whether it was newly enabled (RFC 5161 §3.1)."""
    if cap == "UTF8=ACCEPT":
        if conn.utf8:
            return False
        conn.utf8 = True
        return True
    if cap == "IMAP4REV2":
        if conn.rev2:
            return False
        conn.rev2 = conn.utf8 = True
        return True
    return False


def enabled_name(cap: str) -> str:
    """The capability as advertised (``IMAP4REV2`` → ``IMAP4rev2``)."""
    return "IMAP4rev2" if cap == "IMAP4REV2" else cap


def scrub(lines: Sequence[str]) -> Sequence[str]:
    """Untagged lines for an IMAP4rev2 session: RFC 9051 removed the RECENT response, the
    ``\\Recent`` flag and the UNSEEN response code of SELECT (§6.3.2)."""
    out = []
    for line in lines:
        if _REMOVED.match(line):
            continue
        if "\\Recent" in line:
            line = _FLAGS.sub(_drop_recent, line)
        out.append(line)
    return out


def _drop_recent(m: re.Match[str]) -> str:
    flags = [f for f in m.group(2).split(" ") if f and f.lower() != "\\recent"]
    return m.group(1) + " ".join(flags) + m.group(3)


def search_return(conn: Any, p: Parser) -> frozenset[str]:
    """``RETURN (MIN MAX ALL COUNT SAVE)`` in front of IMAP4rev2 search keys (RFC 9051 §6.4.4.1);
    none or ``RETURN ()`` means ALL. With SAVE, ``$`` is emptied at once, so a SEARCH that fails
    leaves it empty (RFC 5182 §2.1)."""
    if p.line[p.pos:p.pos + 7].upper() != b"RETURN ":
        return _ALL
    p.keyword()
    p.sp()
    p.expect(b"(")
    opts: set[str] = set()
    while not p.take(b")"):
        if opts:
            p.sp()
        opt = p.keyword()
        if opt not in _RETURN_OPTS:
            raise ParseError(f"unsupported SEARCH return option {opt}")
        opts.add(opt)
    p.sp()
    if "SAVE" in opts:
        conn.saved_uids = ()
    return frozenset(opts) or _ALL


_RETURN_OPTS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


def esearch_saving(conn: Any, uid: bool, hits: Sequence[int], numbers: Sequence[int], modseq: int,
                   returns: frozenset[str]) -> str:
    """Save the result for ``$`` if asked (RFC 5182 §2.1: only MIN/MAX when those are asked
    without ALL or COUNT) and render the ESEARCH line ("" for a lone SAVE: no response)."""
    if "SAVE" in returns:
        kept = sorted(hits)
        if kept and returns & {"MIN", "MAX"} and not returns & {"ALL", "COUNT"}:
            kept = sorted({kept[0] if opt == "MIN" else kept[-1] for opt in returns & {"MIN", "MAX"}})
        conn.saved_uids = tuple(kept)
        if returns == {"SAVE"}:
            return ""
    return esearch(conn.command_tag, uid, numbers, modseq, returns)
_ALL = frozenset({"ALL"})


def esearch(tag: str, uid: bool, numbers: Sequence[int], modseq: int = 0,
            returns: frozenset[str] = _ALL) -> str:
    """The IMAP4rev2 answer to SEARCH: ``ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set]
    [COUNT n]`` (RFC 9051 §7.3.4; MIN, MAX and ALL are left out when nothing matched), with
    ``MODSEQ`` (RFC 7162 §3.1.5) when the search used it."""
    line = f"ESEARCH (TAG {quote(tag)})" + (" UID" if uid else "")
    found = sorted(numbers)
    if found:
        if "MIN" in returns:
            line += f" MIN {found[0]}"
        if "MAX" in returns:
            line += f" MAX {found[-1]}"
        if "ALL" in returns:
            line += " ALL " + compress_uids(found)
    if "COUNT" in returns:
        line += f" COUNT {len(found)}"
    if found and modseq:
        line += f" MODSEQ {modseq}"
    return line


def select_list(info: MailboxInfo) -> str:
    """SELECT/EXAMINE's required ``LIST`` response in IMAP4rev2 (RFC 9051 §6.3.2): the mailbox
    name as LIST would give it, with its attributes."""
    attrs = ([info.special_use] if info.special_use else []) + [
        "\\HasChildren" if info.has_children else "\\HasNoChildren"]
    return f'LIST {flag_list(attrs)} "{DELIMITER}" {mailbox_name(info.name, True)}'


def check_status_items(conn: Any, items: Sequence[str]) -> None:
    """RFC 9051 has no RECENT status item (appendix E item 9)."""
    if conn.rev2 and "RECENT" in items:
        raise ParseError("RECENT is not a STATUS item in IMAP4rev2")


def append_data(conn: Any, p: Parser) -> bytes:
    """APPEND's message: a literal, or ``UTF8 (literal8)`` once UTF8=ACCEPT or IMAP4rev2 is on
    (RFC 6855 §4; the framing layer already read ``~{n}``)."""
    if p.at_literal() or p.peek() == ord('"'):
        return p.string()
    if p.keyword() != "UTF8":
        raise ParseError("expected message literal")
    if not conn.utf8:
        raise ParseError("APPEND UTF8 needs ENABLE UTF8=ACCEPT")
    p.sp()
    p.expect(b"(")
    if not p.at_literal():
        raise ParseError("expected literal8")
    data = p.literal()
    p.expect(b")")
    return data
