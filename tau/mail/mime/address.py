"""Lenient RFC 5322 address-list parser producing IMAP address structures.

RFC 5322 section 3.4 (address, mailbox, group, obs-route), RFC 3501 section
7.4.2 (address structure: name, adl, mailbox, host; group start is
``(NIL NIL "group" NIL)``, group end ``(NIL NIL NIL NIL)``).  Encoded words
are left as they are.  Never raises; garbage yields a best-effort result.
"""

from __future__ import annotations

import re

from .headers import comment_end

# (name, adl, mailbox, host); None is NIL.
Address = tuple[str | None, str | None, str | None, str | None]

#: Address headers longer than this are only parsed up to this length.
MAX_ADDRESS_HEADER = 256 * 1024

_TOKENS = re.compile(
    r"""
     (?P<ws>[ \t\r\n]+)
    |(?P<qs>"(?:[^"\\]|\\.)*"?)
    |(?P<dl>\[(?:[^\]\\]|\\.)*\]?)
    |(?P<cm>\()
    |(?P<sp>[<>@,;:.\\\]])
    |(?P<at>[^ \t\r\n"()<>\[\]@,;:.\\]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNQUOTE = re.compile(r"\\(.)", re.DOTALL)

# token: (kind, value, raw, space_before); kind in at/qs/dl/sp/cm
Tok = tuple[str, str, str, bool]


def tokenize(s: str) -> list[Tok]:
    """Split an address header into RFC 5322 lexical tokens."""
    toks: list[Tok] = []
    i = 0
    n = len(s)
    space = False
    match = _TOKENS.match
    while i < n:
        m = match(s, i)
        if m is None:  # cannot happen, but never loop forever
            i += 1
            continue
        kind = m.lastgroup or "at"
        if kind == "ws":
            space = True
            i = m.end()
            continue
        if kind == "cm":
            j = comment_end(s, i)
            body = s[i + 1 : j - 1 if s[j - 1 : j] == ")" else j]
            toks.append(("cm", _UNQUOTE.sub(r"\1", body).strip(), s[i:j], space))
            i = j
            space = True
            continue
        raw = m.group(0)
        value = raw
        if kind == "qs":
            inner = raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
            value = _UNQUOTE.sub(r"\1", inner)
        toks.append((kind, value, raw, space))
        space = False
        i = m.end()
    return toks


def _phrase(toks: list[Tok]) -> str | None:
    words: list[str] = []
    for kind, value, _raw, space in toks:
        if kind == "cm":
            continue
        if words and space:
            words.append(" ")
        words.append(value)
    text = "".join(words).strip()
    return text or None


def _raw_join(toks: list[Tok]) -> str:
    return "".join(raw for kind, _v, raw, _s in toks if kind != "cm")


def _first_comment(toks: list[Tok]) -> str | None:
    for kind, value, _raw, _s in toks:
        if kind == "cm" and value:
            return value
    return None


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.out: list[Address] = []

    def peek(self) -> str | None:
        if self.i < len(self.toks):
            kind, value, _r, _s = self.toks[self.i]
            return value if kind == "sp" else ""
        return None

    def take_until(self, stops: str) -> list[Tok]:
        start = self.i
        toks = self.toks
        n = len(toks)
        while self.i < n:
            kind, value, _r, _s = toks[self.i]
            if kind == "sp" and value in stops:
                break
            self.i += 1
        return toks[start : self.i]

    def run(self) -> list[Address]:
        in_group = False
        while self.i < len(self.toks):
            p = self.peek()
            if p == ",":
                self.i += 1
                continue
            if p == ";":
                self.i += 1
                if in_group:
                    self.out.append((None, None, None, None))
                    in_group = False
                continue
            if p == ">":
                self.i += 1
                continue
            phrase = self.take_until("<:@,;")
            stop = self.peek()
            if stop == ":":
                self.i += 1
                if in_group:
                    self.out.append((None, None, None, None))
                self.out.append((None, None, _phrase(phrase) or "", None))
                in_group = True
            elif stop == "<":
                self.i += 1
                self.angle(phrase)
            elif stop == "@":
                self.addr_spec(phrase)
            else:
                self.bare(phrase)
        if in_group:
            self.out.append((None, None, None, None))
        return self.out

    def angle(self, phrase: list[Tok]) -> None:
        adl = None
        if self.peek() == "@":
            route = self.take_until(":>")
            if self.peek() == ":":
                self.i += 1
                adl = _raw_join(route) or None
            else:
                self.i = self.i - len(route)
        local = self.take_until("@>,;")
        host = ""
        if self.peek() == "@":
            self.i += 1
            host = _raw_join(self.take_until(">,;"))
        if self.peek() == ">":
            self.i += 1
        trailing = self.take_until(",;")  # junk after '>' is dropped
        name = _phrase(phrase) or _first_comment(trailing)
        self.out.append((name, adl, _raw_join(local), host))

    def addr_spec(self, phrase: list[Tok]) -> None:
        # "John Doe john@example.com": the last word is the local part.
        split = 0
        for k in range(len(phrase) - 1, 0, -1):
            if phrase[k][3] and phrase[k][0] != "cm":
                split = k
                break
        name_toks, local = phrase[:split], phrase[split:]
        self.i += 1  # '@'
        domain = self.take_until(",;<")
        if self.peek() == "<":
            # "a@b <c@d>": treat everything before '<' as the phrase
            self.i += 1
            self.angle(phrase + [("at", "@", "@", False)] + domain)
            return
        name = _phrase(name_toks) or _first_comment(phrase) or _first_comment(domain)
        self.out.append((name, None, _raw_join(local), _raw_join(domain)))

    def bare(self, phrase: list[Tok]) -> None:
        local = _raw_join(phrase)
        if local:
            self.out.append((_first_comment(phrase), None, local, ""))
        elif self.i < len(self.toks) and self.peek() not in (",", ";"):
            self.i += 1  # unparseable token: skip it


def parse_address_list(value: str | None) -> list[Address]:
    """Parse an address-list header value into IMAP address structures."""
    if not value:
        return []
    if len(value) > MAX_ADDRESS_HEADER:
        value = value[:MAX_ADDRESS_HEADER]
    try:
        return _Parser(tokenize(value)).run()
    except Exception:  # noqa: BLE001
        return []


def addr_specs(addresses: list[Address]) -> list[str]:
    """Bare lower-case addr-specs of the real (non-group-marker) addresses."""
    out: list[str] = []
    for _name, _adl, mailbox, host in addresses:
        if host is None or mailbox is None:
            continue
        out.append((mailbox + "@" + host if host else mailbox).lower())
    return out
