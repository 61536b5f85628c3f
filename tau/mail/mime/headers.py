"""Header block scanning and structured header parsing.

RFC 5322 section 2.2 (header fields, folding), RFC 2045 section 5
(Content-Type), RFC 2183 (Content-Disposition), RFC 2231 (parameter
continuations).  Nothing here raises on malformed input.
"""

from __future__ import annotations

import re

from .charset import decode_header_bytes

Header = tuple[str, str]  # (lower-case name, unfolded raw value)

_NAME_OK = re.compile(rb"[\x21-\x39\x3b-\x7e\x80-\xff]+\Z")
#: Header values longer than this are truncated (huge-header defence).
MAX_VALUE = 1 << 20
#: Fields beyond this many in one header block are scanned but not kept.
MAX_FIELDS = 5000


def scan_header(raw: bytes, start: int, end: int) -> tuple[list[Header], int]:
    """Scan the header block of the entity at ``raw[start:end]``.

    Returns ``(headers, body_start)``.  The header ends after the first empty
    line (which belongs to the header, RFC 3501 section 6.4.5), or before the
    first line that is neither a field nor a continuation (the body then
    starts there, with no separator), or at ``end``.
    """
    fields: list[list] = []  # [name, value_start, value_end]
    cur: list | None = None  # field that continuation lines extend
    pos = start
    first = True
    find = raw.find
    while pos < end:
        nl = find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        c = raw[pos]
        if c == 10 or (c == 13 and line_end - pos <= 2 and raw[line_end - 1] == 10):
            return _finish(raw, fields), line_end
        if c == 32 or c == 9:
            if cur is not None:
                cur[2] = line_end
            elif not first and not fields:
                return _finish(raw, fields), pos
        else:
            colon = find(b":", pos, line_end)
            name = raw[pos:colon].rstrip(b" \t") if colon > pos else b""
            if not name or not _NAME_OK.match(name):
                if first and raw.startswith(b"From ", pos):
                    pos = line_end  # mbox separator line: ignore it
                    first = False
                    continue
                return _finish(raw, fields), pos
            if len(fields) < MAX_FIELDS:
                cur = [name, colon + 1, line_end]
                fields.append(cur)
            else:
                cur = None
        first = False
        pos = line_end
    return _finish(raw, fields), end


def _finish(raw: bytes, fields: list[list]) -> list[Header]:
    out: list[Header] = []
    for name, vs, ve in fields:
        if ve - vs > MAX_VALUE:
            ve = vs + MAX_VALUE
        out.append((name.decode("latin-1").lower(), unfold(raw[vs:ve])))
    return out


def unfold(value: bytes) -> str:
    """Unfold (RFC 5322 section 2.2.3), trim, drop NULs, decode 8-bit."""
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    value = value.strip(b" \t\r")
    if b"\x00" in value:
        value = value.replace(b"\x00", b"")
    if value.isascii():
        return value.decode("ascii")
    return decode_header_bytes(value)


def get(headers: list[Header], name: str) -> str | None:
    """First value of header ``name`` (lower-case), or None."""
    for n, v in headers:
        if n == name:
            return v
    return None


# --- Content-Type style values ---------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def comment_end(s: str, i: int) -> int:
    """Index just past the (nested, backslash-quoted) RFC 5322 comment opening at ``s[i]``."""
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_cfws(s: str, i: int) -> int:
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            i = comment_end(s, i)
        else:
            break
    return i


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``s[i] == '"'``; unterminated ends at EOS."""
    out: list[str] = []
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i


def parse_params(s: str, i: int) -> list[tuple[str, str]]:
    """Parse ``; attr=value`` pairs from ``s[i:]`` (RFC 2045 section 5.1),
    merging RFC 2231 continuations.  Attribute names are upper-cased."""
    raw: list[tuple[str, str]] = []
    n = len(s)
    while i < n:
        i = _skip_cfws(s, i)
        if i >= n:
            break
        if s[i] == ";":
            i += 1
            continue
        m = _TOKEN.match(s, i)
        if not m:
            # junk: skip to the next ';'
            j = s.find(";", i)
            i = n if j < 0 else j + 1
            continue
        attr = m.group(0)
        i = _skip_cfws(s, m.end())
        if i >= n or s[i] != "=":
            j = s.find(";", i)
            i = n if j < 0 else j + 1
            continue
        i = _skip_cfws(s, i + 1)
        if i < n and s[i] == '"':
            value, i = _read_quoted(s, i)
        else:
            j = s.find(";", i)
            j = n if j < 0 else j
            value = s[i:j].strip()
            i = j
        raw.append((attr, value))
    return _merge_rfc2231(raw)


_CONT = re.compile(r"(.+?)\*(\d{1,3})(\*?)\Z")


def _merge_rfc2231(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join ``name*0``, ``name*1*`` ... continuations (RFC 2231 section 3)."""
    if not any("*" in a for a, _ in params):
        return [(a.upper(), v) for a, v in params]
    out: list[tuple[str, str] | str] = []
    conts: dict[str, list[tuple[int, str, bool]]] = {}
    for attr, value in params:
        m = _CONT.match(attr)
        if not m:
            out.append((attr.upper(), value))
            continue
        base = m.group(1).upper()
        if base not in conts:
            conts[base] = []
            out.append(base)  # placeholder keeps ordering
        conts[base].append((int(m.group(2)), value, bool(m.group(3))))
    result: list[tuple[str, str]] = []
    for item in out:
        if isinstance(item, tuple):
            result.append(item)
            continue
        pieces = sorted(conts[item], key=lambda p: p[0])
        extended = pieces[0][2]
        result.append((item + ("*" if extended else ""), "".join(p[1] for p in pieces)))
    return result


def parse_content_type(
    value: str | None,
) -> tuple[str, str, list[tuple[str, str]]] | None:
    """Parse a Content-Type value into ``(type, subtype, params)`` (lower-case
    type/subtype), or None if it is missing or syntactically garbage
    (RFC 2045 section 5.2: the caller then defaults)."""
    if value is None:
        return None
    s = value
    i = _skip_cfws(s, 0)
    m = _TOKEN.match(s, i)
    if not m:
        return None
    mtype = m.group(0).lower()
    i = _skip_cfws(s, m.end())
    if i >= len(s) or s[i] != "/":
        return None
    i = _skip_cfws(s, i + 1)
    m = _TOKEN.match(s, i)
    if not m:
        return None
    sub = m.group(0).lower()
    i = _skip_cfws(s, m.end())
    if i < len(s) and s[i] != ";":
        return None
    return mtype, sub, parse_params(s, i)


def parse_disposition(value: str | None) -> tuple[str, list[tuple[str, str]]] | None:
    """Parse Content-Disposition (RFC 2183) into ``(type, params)``."""
    if value is None:
        return None
    i = _skip_cfws(value, 0)
    m = _TOKEN.match(value, i)
    if not m:
        return None
    return m.group(0), parse_params(value, m.end())


def simple_token(value: str | None) -> str | None:
    """First token of a value such as Content-Transfer-Encoding, comments skipped."""
    if value is None:
        return None
    i = _skip_cfws(value, 0)
    m = _TOKEN.match(value, i)
    return m.group(0) if m else None


def param(params: list[tuple[str, str]], name: str) -> str | None:
    """Look up an (upper-case) parameter name."""
    for a, v in params:
        if a == name:
            return v
    return None
