"""IMAP string rendering (RFC 3501 section 4.3 and 9: ``nstring``).

Everything rendered here is a ``str`` that must be put on the wire encoded
as UTF-8: literal lengths are counted in UTF-8 octets.
"""

from __future__ import annotations

import re

NIL = "NIL"

#: Longest value sent as a quoted string; longer ones become literals.
MAX_QUOTED = 1000

# Anything a quoted string may not carry (RFC 3501 section 9, QUOTED-CHAR is
# 7-bit TEXT-CHAR): CR, LF and every non-ASCII character.
_NEEDS_LITERAL = re.compile(r"[\r\n\x80-\U0010ffff]")


def nstring(value: str | None) -> str:
    """Render ``value`` as an IMAP nstring: NIL, a quoted string or a literal.

    NUL is never allowed in IMAP strings (RFC 3501 section 9, CHAR8), so it
    is dropped.
    """
    if value is None:
        return NIL
    if "\x00" in value:
        value = value.replace("\x00", "")
    if len(value) > MAX_QUOTED or _NEEDS_LITERAL.search(value):
        return f"{{{len(value.encode('utf-8', 'replace'))}}}\r\n{value}"
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value + '"'


def string(value: str) -> str:
    """Render a non-NIL IMAP string."""
    return nstring(value)


def nlist(items: list[str]) -> str:
    """Render a parenthesised list of already-rendered items, NIL if empty."""
    if not items:
        return NIL
    return "(" + " ".join(items) + ")"
