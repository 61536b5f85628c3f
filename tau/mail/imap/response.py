"""Rendering server data (RFC 3501 §7 and §9): strings, flag lists, sequence sets, dates.

Everything returns ``str`` meant to go on the wire as UTF-8 (literal lengths count octets), except
where bytes are unavoidable (message bodies), which ``fetch.py`` handles itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from .parser import MONTHS, mutf7_encode

_SAFE_QUOTED = frozenset(map(chr, range(0x20, 0x7F)))


def quote(value: str) -> str:
    """A quoted string when the text allows it, else a literal (RFC 3501 §4.3)."""
    if len(value) <= 1000 and set(value) <= _SAFE_QUOTED:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    data = value.replace("\x00", "")
    return f"{{{len(data.encode('utf-8'))}}}\r\n{data}"


def mailbox_name(name: str, utf8: bool = False) -> str:
    """A mailbox name on the wire, always quoted (clients all cope): modified UTF-7, or UTF-8 once
    the session enabled UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3, RFC 9051 §5.1)."""
    return utf8_quote(name) if utf8 else quote(mutf7_encode(name))


def utf8_quote(value: str) -> str:
    """A quoted string that may carry UTF-8 (RFC 6855 ``utf8-quoted``, RFC 9051 ``quoted``)."""
    if len(value) <= 1000 and all(c >= "\x20" and c != "\x7f" for c in value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return quote(value)


def flag_list(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


def compress_uids(numbers: Sequence[int]) -> str:
    """Numbers → a sequence set with ascending runs as ``a:b``, order kept (COPYUID pairs up)."""
    if not numbers:
        return ""
    out: list[str] = []
    start = prev = numbers[0]
    for u in numbers[1:]:
        if u == prev + 1:
            prev = u
            continue
        out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = u
    out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


_DATE_CACHE: dict[int, str] = {}


def internal_date(ts: int) -> str:
    """``"17-Jul-1996 09:44:25 +0000"`` (RFC 3501 §9 ``date-time``), always UTC."""
    day = ts - ts % 86400
    head = _DATE_CACHE.get(day)
    if head is None:
        t = time.gmtime(day)
        head = f"{t.tm_mday:02d}-{MONTHS[t.tm_mon - 1]}-{t.tm_year:04d}"
        if len(_DATE_CACHE) > 4096:
            _DATE_CACHE.clear()
        _DATE_CACHE[day] = head
    s = ts - day
    return f'"{head} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d} +0000"'
