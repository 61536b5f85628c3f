"""IMAP command syntax (RFC 3501 §4 and §9): tokens, strings, literals, lists, sequence sets.

The framing layer (``protocol.py``) hands over one command as *segments*: the text of each line
(without CRLF and without the trailing ``{n}`` literal marker) alternating with the literal that
followed it, ``[line0, literal0, line1, literal1, ..., lineN]``. A :class:`Parser` walks those
segments: a string read at the very end of a line that was followed by a literal *is* that literal.
The command modules call the small grammar methods here in the order their ABNF says; anything
that does not fit raises :class:`ParseError`, which the protocol turns into ``BAD``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta, timezone

# RFC 3501 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / "]"
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | {0x7F}
ATOM_CHARS = frozenset(range(0x21, 0x100)) - _ATOM_SPECIALS
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
LIST_CHARS = ASTRING_CHARS | {ord("%"), ord("*")}
_SEQ_CHARS = frozenset(b"0123456789:*,")
_DIGITS = frozenset(b"0123456789")
MAX_NUMBER = 2**63 - 1
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}


class ParseError(Exception):
    """The command does not match the grammar: answered with ``BAD``."""


class SeqSet:
    """A sequence set (RFC 3501 §9 ``sequence-set``): ranges with ``None`` standing for ``*``."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[tuple[int | None, int | None]]) -> None:
        self.ranges = ranges

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Ranges as ``(lo, hi)`` with ``*`` replaced by ``star`` and each range ordered."""
        out = []
        for a, b in self.ranges:
            lo = star if a is None else a
            hi = star if b is None else b
            out.append((lo, hi) if lo <= hi else (hi, lo))
        return out

    def __repr__(self) -> str:
        return f"SeqSet({self.ranges!r})"


class SavedSet(SeqSet):
    """``$`` (RFC 5182 SEARCHRES): the selected mailbox's saved search result, resolved there."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__([])


def parse_seqset(text: bytes) -> SeqSet:
    """``1:3,5,7:*`` → SeqSet; zero and empty elements are syntax errors (``nz-number``)."""
    ranges: list[tuple[int | None, int | None]] = []
    for item in text.split(b","):
        ends = item.split(b":")
        if len(ends) > 2:
            raise ParseError("bad sequence set")
        vals: list[int | None] = []
        for e in ends:
            if e == b"*":
                vals.append(None)
            elif e.isdigit() and e[0] != 0x30 and len(e) <= 10:
                vals.append(int(e))
            else:
                raise ParseError("bad sequence set")
        ranges.append((vals[0], vals[-1]))
    return SeqSet(ranges)


class Parser:
    """Recursive-descent reader over one command's segments (see module docstring)."""

    __slots__ = ("line", "pos", "segs", "seg", "utf8")

    def __init__(self, segments: list[bytes], utf8: bool = False) -> None:
        self.utf8 = utf8  # mailbox names are plain UTF-8, "&" included (RFC 6855 §3, RFC 9051 §5.1)
        self.segs = segments
        self.seg = 0
        self.line = segments[0]
        self.pos = 0

    # -- low level ---------------------------------------------------------------------------
    def peek(self) -> int:
        """Next byte of the current line, or -1 at its end."""
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_literal(self) -> bool:
        return self.pos >= len(self.line) and self.seg + 1 < len(self.segs)

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.seg + 1 >= len(self.segs)

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected extra arguments")

    def rest(self) -> bytes:
        """The remainder of the current line (for error messages and free text)."""
        out = self.line[self.pos:]
        self.pos = len(self.line)
        return out

    def take(self, char: bytes) -> bool:
        if self.line[self.pos:self.pos + 1] == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: bytes) -> None:
        if not self.take(char):
            raise ParseError(f"expected {char.decode()!r}")

    def sp(self) -> None:
        self.expect(b" ")

    def take_while(self, allowed: frozenset[int] | set[int]) -> bytes:
        line, start = self.line, self.pos
        end, n = start, len(line)
        while end < n and line[end] in allowed:
            end += 1
        self.pos = end
        return line[start:end]

    def literal(self) -> bytes:
        if not self.at_literal():
            raise ParseError("expected literal")
        data = self.segs[self.seg + 1]
        self.seg += 2
        self.line = self.segs[self.seg]
        self.pos = 0
        return data

    # -- RFC 3501 §9 productions -----------------------------------------------------------------
    def atom(self) -> str:
        word = self.take_while(ATOM_CHARS)
        if not word:
            raise ParseError("expected atom")
        return word.decode("utf-8", "replace")

    def keyword(self) -> str:
        """An atom upper-cased (command names, FETCH items, SEARCH keys)."""
        return self.atom().upper()

    def number(self, nz: bool = False) -> int:
        digits = self.take_while(_DIGITS)
        if not digits or len(digits) > 19:
            raise ParseError("expected number")
        value = int(digits)
        if (nz and value == 0) or value > MAX_NUMBER:
            raise ParseError("number out of range")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"')
        line, i, out = self.line, self.pos, bytearray()
        n = len(line)
        while i < n:
            c = line[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C:
                i += 1
                if i >= n or line[i] not in (0x22, 0x5C):
                    raise ParseError("bad escape in quoted string")
            out.append(line[i])
            i += 1
        raise ParseError("unterminated quoted string")

    def string(self) -> bytes:
        if self.at_literal():
            return self.literal()
        if self.peek() == 0x22:
            return self.quoted()
        raise ParseError("expected string")

    def astring(self) -> bytes:
        if self.at_literal() or self.peek() == 0x22:
            return self.string()
        word = self.take_while(ASTRING_CHARS)
        if not word:
            raise ParseError("expected string or atom")
        return word

    def nstring(self) -> bytes | None:
        if self.line[self.pos:self.pos + 3].upper() == b"NIL" and not self.at_literal():
            after = self.line[self.pos + 3:self.pos + 4]
            if after in (b"", b" ", b")"):
                self.pos += 3
                return None
        return self.string()

    def text(self) -> str:
        return self.astring().decode("utf-8", "replace")

    def mailbox(self) -> str:
        """A mailbox name: modified UTF-7 (RFC 3501 §5.1.3) or UTF-8, INBOX case-insensitive."""
        return decode_mailbox(self.astring(), utf8=self.utf8)

    def list_mailbox(self) -> str:
        """LIST patterns may use ``%`` and ``*`` unquoted (RFC 3501 §9 ``list-mailbox``)."""
        if self.at_literal() or self.peek() == 0x22:
            raw = self.string()
        else:
            raw = self.take_while(LIST_CHARS)
            if not raw:
                raise ParseError("expected mailbox pattern")
        return decode_mailbox(raw, inbox=False, utf8=self.utf8)

    def seqset(self) -> SeqSet:
        raw = self.take_while(_SEQ_CHARS)
        if not raw:
            if self.take(b"$"):
                return SavedSet()
            raise ParseError("expected sequence set")
        return parse_seqset(raw)

    def flag(self) -> str:
        """``\\Flag`` or a keyword; system flags are returned in canonical case."""
        if self.take(b"\\"):
            if self.take(b"*"):
                raise ParseError("\\* is not a flag")
            return canonical_flag("\\" + self.atom())
        return self.atom()

    def flag_list(self, parens_optional: bool = False) -> list[str]:
        """``(\\Seen $Work)``; STORE also accepts the flags without parentheses."""
        if not self.take(b"("):
            if not parens_optional:
                raise ParseError("expected flag list")
            flags = [self.flag()]
            while self.take(b" "):
                flags.append(self.flag())
            return flags
        flags = []
        if self.take(b")"):
            return flags
        while True:
            flags.append(self.flag())
            if self.take(b")"):
                return flags
            self.sp()

    def date(self) -> int:
        """SEARCH ``date`` (``1-Feb-1994``, optionally quoted) → unix time of 00:00 UTC that day."""
        quoted = self.take(b'"')
        raw = self.take_while(ATOM_CHARS - {ord('"')})
        if quoted:
            self.expect(b'"')
        try:
            day, mon, year = raw.decode("ascii").split("-")
            d = datetime(int(year), _MONTH_NUM[mon.lower()], int(day), tzinfo=UTC)
        except (ValueError, KeyError, UnicodeDecodeError):
            raise ParseError("bad date") from None
        return int(d.timestamp())

    def date_time(self) -> int:
        """APPEND ``date-time``: ``"17-Jul-1996 02:44:25 -0700"`` → unix seconds."""
        raw = self.quoted().decode("ascii", "replace")
        return parse_date_time(raw)

    def paren_open(self) -> None:
        self.expect(b"(")


def parse_date_time(raw: str) -> int:
    try:
        date_part, time_part, zone = raw.split()
        day, mon, year = date_part.split("-")
        hh, mm, ss = (int(x) for x in time_part.split(":"))
        if len(zone) != 5 or zone[0] not in "+-" or not zone[1:].isdigit():
            raise ValueError(zone)
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        tz = timezone(-offset if zone[0] == "-" else offset)
        d = datetime(int(year), _MONTH_NUM[mon.lower()], int(day), hh, mm, ss, tzinfo=tz)
    except (ValueError, KeyError):
        raise ParseError("bad date-time") from None
    stamp = int(d.timestamp())
    if not _MIN_STAMP <= stamp <= _MAX_STAMP:  # INTERNALDATE could not be written back (4-digit year)
        raise ParseError("date-time out of range")
    return stamp


_MIN_STAMP = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
_MAX_STAMP = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


def canonical_flag(flag: str) -> str:
    """System flags are case-insensitive (RFC 3501 §2.3.2); keep one spelling."""
    return _SYSTEM_FLAGS.get(flag.lower(), flag)


_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
                                        "\\Recent")}


# -- modified UTF-7 (RFC 3501 §5.1.3) ------------------------------------------------------------
#: prefixed to a name that is not valid modified UTF-7 (see :func:`decode_mailbox`)
INVALID_NAME_MARK = "\x00"


def decode_mailbox(raw: bytes, inbox: bool = True, utf8: bool = False) -> str:
    """Wire bytes → Unicode name. Names with ``&`` are modified UTF-7 (unless the session speaks
    UTF-8 names, ``utf8``); 8-bit bytes are UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("mailbox name is not UTF-8") from None
    if "&" in text and not utf8:
        try:
            text = mutf7_decode(text)
        except ParseError:
            # Not modified UTF-7: no mailbox can have this name (Dovecot answers NO, not BAD).
            # The control character makes every name check fail, so SELECT/STATUS say
            # NONEXISTENT, CREATE/RENAME refuse the name and a LIST pattern matches nothing.
            return INVALID_NAME_MARK + text
    if inbox and text.upper() == "INBOX":
        return "INBOX"
    if inbox and text[:6].upper() == "INBOX/":
        return "INBOX" + text[5:]
    return text


def mutf7_decode(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c != "&":
            if not 0x20 <= ord(c) <= 0x7E:
                return text  # 8-bit name: it was UTF-8 all along
            out.append(c)
            i += 1
            continue
        j = text.find("-", i + 1)
        if j < 0:
            raise ParseError("bad modified UTF-7 in mailbox name")
        if j == i + 1:
            out.append("&")
        else:
            chunk = text[i + 1:j].replace(",", "/")
            try:
                data = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
                out.append(data.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise ParseError("bad modified UTF-7 in mailbox name") from None
        i = j + 1
    return "".join(out)


def mutf7_encode(name: str) -> str:
    """Unicode name → modified UTF-7 for the wire."""
    if name.isascii() and "&" not in name:
        return name
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
            run.clear()

    for c in name:
        if 0x20 <= ord(c) <= 0x7E:
            flush()
            out.append("&-" if c == "&" else c)
        else:
            run.append(c)
    flush()
    return "".join(out)
