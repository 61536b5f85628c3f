"""SMTP command-argument grammar and replies: paths (RFC 5321 §4.1.2) and ESMTP parameters.

Twisted's ``smtp.Address`` decodes addresses as ASCII and invents a domain for bare local
parts, so MAIL/RCPT arguments are parsed here instead: ``<local@domain>`` with an optional
(ignored) source route, UTF-8 allowed only under SMTPUTF8 (RFC 6531 §3.3), and the length
limits of RFC 5321 §4.5.3.1. Like Postfix we tolerate a space after the colon and a path
without angle brackets, since real clients send both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LOCAL = 64            # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255          # §4.5.3.1.2
MAX_PATH = 256            # §4.5.3.1.3

_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\x80-\xff]"
_DOT_STRING = re.compile(rb"%s+(?:\.%s+)*" % (_ATEXT, _ATEXT))
_QUOTED = re.compile(rb'"(?:[^"\\\r\n]|\\[\x20-\x7e\x80-\xff])*"')
_DOMAIN = re.compile(rb"[A-Za-z0-9\x80-\xff](?:[A-Za-z0-9\x80-\xff-]*[A-Za-z0-9\x80-\xff])?"
                     rb"(?:\.[A-Za-z0-9\x80-\xff](?:[A-Za-z0-9\x80-\xff-]*[A-Za-z0-9\x80-\xff])?)*")
_LITERAL = re.compile(rb"\[[\x21-\x5a\x5e-\x7e]+\]")
_PARAM = re.compile(rb"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\x80-\xff]*))?")


class Reply(Exception):
    """An SMTP reply (code + enhanced status + text) raised from anywhere in a command."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text

    def line(self) -> bytes:
        return self.text.encode("utf-8", "replace")


@dataclass(frozen=True)
class PathArgument:
    """A parsed MAIL FROM / RCPT TO argument."""

    address: str                     # "" for the null reverse-path <>
    params: dict[str, str | None]    # upper-cased keyword -> value (None when absent)
    utf8: bool                       # the address has non-ASCII octets


def parse_path(rest: bytes, keyword: bytes, bad_syntax: str) -> PathArgument:
    """Parse ``FROM:<path> params`` / ``TO:<path> params`` (RFC 5321 §4.1.1.2-3, RFC 1869 §6).

    ``bad_syntax`` is the enhanced code to report (5.1.7 for senders, 5.1.3 for recipients).
    """
    if rest[: len(keyword)].upper() != keyword:
        raise Reply(501, f"5.5.4 Syntax: {keyword.decode()}<address>")
    rest = rest[len(keyword):].lstrip(b" ")
    if not rest:
        raise Reply(501, f"5.5.4 Syntax: {keyword.decode()}<address>")
    if rest.startswith(b"<"):
        end = _closing_bracket(rest)
        if end < 0:
            raise Reply(501, f"{bad_syntax} Bad address syntax: missing '>'")
        inner, tail = rest[1:end], rest[end + 1:]
        if tail and not tail.startswith(b" "):
            raise Reply(501, f"{bad_syntax} Bad address syntax")
    else:
        inner, _, tail = rest.partition(b" ")
        tail = b" " + tail if tail else b""
    params = parse_params(tail)
    address = _mailbox(_strip_source_route(inner), bad_syntax)
    return PathArgument(address, params, any(ord(c) > 127 for c in address))


def _closing_bracket(data: bytes) -> int:
    """Index of the '>' that closes the path, skipping quoted strings."""
    quoted = escaped = False
    for i in range(1, len(data)):
        c = data[i]
        if escaped:
            escaped = False
        elif c == 0x5C and quoted:
            escaped = True
        elif c == 0x22:
            quoted = not quoted
        elif c == 0x3E and not quoted:
            return i
    return -1


def _strip_source_route(inner: bytes) -> bytes:
    """``@a,@b:user@c`` → ``user@c``: source routes are obsolete and ignored (RFC 5321 §4.1.2, C)."""
    if inner.startswith(b"@") and b":" in inner:
        return inner.split(b":", 1)[1]
    return inner


def _mailbox(inner: bytes, bad_syntax: str) -> str:
    if inner == b"":
        return ""
    if len(inner) > MAX_PATH:
        raise Reply(501, f"{bad_syntax} Address too long")
    local, at, domain = inner.rpartition(b"@")
    if not at:
        # RFC 5321 §4.1.1.3: "Postmaster" without a domain must be accepted; the caller qualifies it.
        if inner.lower() == b"postmaster":
            return "postmaster"
        raise Reply(501, f"{bad_syntax} Bad address syntax: no domain")
    if not (_DOT_STRING.fullmatch(local) or _QUOTED.fullmatch(local)):
        raise Reply(501, f"{bad_syntax} Bad address syntax in local part")
    if not (_DOMAIN.fullmatch(domain) or _LITERAL.fullmatch(domain)):
        raise Reply(501, f"{bad_syntax} Bad address syntax in domain")
    if len(local) > MAX_LOCAL or len(domain) > MAX_DOMAIN:
        raise Reply(501, f"{bad_syntax} Address too long")
    try:
        return inner.decode("utf-8")
    except UnicodeDecodeError:
        raise Reply(501, f"{bad_syntax} Address is not valid UTF-8") from None


def parse_params(tail: bytes) -> dict[str, str | None]:
    """ESMTP ``keyword[=value]`` parameters after a path (RFC 5321 §4.1.2 Mail-parameters)."""
    params: dict[str, str | None] = {}
    for word in tail.split(b" "):
        if not word:
            continue
        m = _PARAM.fullmatch(word)
        if m is None:
            raise Reply(501, "5.5.4 Bad parameter syntax")
        key = m.group(1).decode("ascii").upper()
        if key in params:
            raise Reply(501, f"5.5.4 Duplicate parameter {key}")
        value = m.group(2)
        params[key] = None if value is None else value.decode("utf-8", "replace")
    return params


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def sanitize(text: bytes | str, limit: int = 255) -> str:
    """Printable ASCII for trace headers and logs (a HELO name is client-controlled)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "".join(c if 32 < ord(c) < 127 else "?" for c in text[:limit])
