"""``Content-Disposition`` values built per RFC 6266 with RFC 8187 ``filename*`` (the one builder).

A file name is data, never header syntax: the ASCII fallback ``filename="..."`` (for old agents)
has every quote, backslash, ``;``, ``%``, path separator, control and non-ASCII character replaced,
and the real name travels percent-encoded in ``filename*=UTF-8''...``, which RFC 6266 §4.3 makes
agents prefer. So a name like ``x"; filename*=UTF-8''a.exe; y="`` cannot add or change a
parameter: it stays inside one quoted string and one percent-encoded token.
"""

from __future__ import annotations

from urllib.parse import quote

#: RFC 8187 attr-char beyond what ``quote`` always keeps (ALPHA DIGIT "-" "." "_" "~")
_ATTR_EXTRA = "!#$&+^`|"
#: replaced in the quoted ASCII fallback (RFC 6266 §4.3: avoid "%" and "\\"; ";" and quotes for
#: agents that split parameters naively; path separators so no agent sees a directory)
_FALLBACK_UNSAFE = set('"\\;%/:*?<>|')
MAX_NAME = 255


def clean_filename(name: str) -> str:
    """The name an agent should save under: no control characters, no path, at most 255 chars."""
    out = "".join("_" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "/\\" else c for c in name)
    out = out.strip() or "download"
    return out[:MAX_NAME]


def ascii_fallback(name: str) -> str:
    """Printable ASCII for ``filename="..."``: anything else, and any delimiter, becomes ``_``."""
    return "".join(c if 0x20 <= ord(c) < 0x7F and c not in _FALLBACK_UNSAFE else "_" for c in name)


def content_disposition(filename: str | None, inline: bool = False) -> str:
    """``attachment`` (or ``inline``) with both file name forms; no name gives the bare type."""
    kind = "inline" if inline else "attachment"
    if not filename:
        return kind
    name = clean_filename(filename)
    encoded = quote(name, safe=_ATTR_EXTRA, encoding="utf-8", errors="replace")
    return f"{kind}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"
