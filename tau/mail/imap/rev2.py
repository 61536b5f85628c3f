"""Session modes switched on by ENABLE: UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051).

The server speaks IMAP4rev1 until the client sends ``ENABLE IMAP4rev2`` (RFC 9051 appendix A),
and modified UTF-7 mailbox names until ``ENABLE UTF8=ACCEPT`` or ``ENABLE IMAP4rev2``. Both are
flags on the connection (``conn.utf8``, ``conn.rev2``) that the command modules consult:

- ``conn.utf8``: mailbox names are read and written as UTF-8, ``&`` included (``Parser.utf8``,
  ``response.mailbox_name``); APPEND accepts ``UTF8 (~{n}...)`` (:func:`append_data`).
- ``conn.rev2`` (implies ``conn.utf8``): no ``* n RECENT``, no ``\\Recent`` and no
  ``[UNSEEN n]`` in untagged responses (:func:`scrub`, applied by ``IMAPConnection.untagged``);
  SELECT/EXAMINE also send the mailbox's LIST response (:func:`select_list`) and, when they
  replace a selected mailbox, ``* OK [CLOSED]`` first; SEARCH answers ``* ESEARCH`` (``esearch.py``, RETURN (ALL)
  when the client asks for nothing); STATUS has DELETED and no RECENT; LIST marks non-existent names
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
from .response import flag_list, mailbox_name

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
