"""Shared helpers for the tau.mail tests: a strict IMAP response-syntax
parser (RFC 3501 section 9) and BODYSTRUCTURE/ENVELOPE shape checkers."""

from __future__ import annotations

import re

import pytest
from imapclient.response_parser import parse_fetch_response


class ImapSyntaxError(AssertionError):
    pass


def _parse(data: bytes, pos: int):
    c = data[pos : pos + 1]
    if c == b"(":
        out = []
        pos += 1
        if data[pos : pos + 1] == b")":
            raise ImapSyntaxError(f"empty list at {pos}")
        while True:
            item, pos = _parse(data, pos)
            out.append(item)
            nxt = data[pos : pos + 1]
            if nxt == b")":
                return out, pos + 1
            if nxt == b" ":
                pos += 1
            elif nxt == b"(" and isinstance(item, list):
                pass  # ")(": 1*address and 1*body have no separator
            else:
                raise ImapSyntaxError(f"bad separator {nxt!r} at {pos}")
    if c == b'"':
        out = bytearray()
        pos += 1
        while True:
            ch = data[pos : pos + 1]
            if not ch:
                raise ImapSyntaxError("unterminated quoted string")
            if ch == b"\\":
                esc = data[pos + 1 : pos + 2]
                if esc not in (b"\\", b'"'):
                    raise ImapSyntaxError(f"bad escape {esc!r}")
                out += esc
                pos += 2
                continue
            if ch == b'"':
                return out.decode("ascii"), pos + 1
            if ch in (b"\r", b"\n", b"\x00") or ch[0] > 127:
                raise ImapSyntaxError(f"bad char {ch!r} in quoted string")
            out += ch
            pos += 1
    if c == b"{":
        m = re.compile(rb"\{(\d+)\}\r\n").match(data, pos)
        if not m:
            raise ImapSyntaxError(f"bad literal at {pos}")
        n = int(m.group(1))
        start = m.end()
        if start + n > len(data):
            raise ImapSyntaxError("literal overruns")
        lit = data[start : start + n]
        if b"\x00" in lit:
            raise ImapSyntaxError("NUL in literal")
        return lit.decode("utf-8"), start + n
    if data[pos : pos + 3] == b"NIL":
        return None, pos + 3
    m = re.compile(rb"\d+").match(data, pos)
    if m:
        return int(m.group(0)), m.end()
    raise ImapSyntaxError(f"unexpected {data[pos : pos + 10]!r} at {pos}")


def imap_parse_value(s: str):
    """Parse one rendered IMAP value strictly; literals count UTF-8 octets."""
    data = s.encode("utf-8")
    value, pos = _parse(data, 0)
    if pos != len(data):
        raise ImapSyntaxError(f"trailing data {data[pos:]!r}")
    return value


def _is_nstring(v) -> bool:
    return v is None or isinstance(v, str)


def _check_params(p) -> None:
    assert p is None or (
        isinstance(p, list) and len(p) % 2 == 0 and all(isinstance(x, str) for x in p)
    )


def _check_ext(ext: list, multipart: bool) -> None:
    if multipart:
        assert len(ext) == 4, ext
        _check_params(ext[0])
        dsp, lang, loc = ext[1:]
    else:
        assert len(ext) == 4, ext
        assert _is_nstring(ext[0])
        dsp, lang, loc = ext[1:]
    assert dsp is None or (
        isinstance(dsp, list) and len(dsp) == 2 and isinstance(dsp[0], str)
    )
    if dsp is not None:
        _check_params(dsp[1])
    assert (
        lang is None
        or isinstance(lang, str)
        or (isinstance(lang, list) and all(isinstance(x, str) for x in lang))
    )
    assert _is_nstring(loc)


def check_envelope(env) -> None:
    assert isinstance(env, list) and len(env) == 10, env
    for i in (0, 1, 8, 9):
        assert _is_nstring(env[i])
    for lst in env[2:8]:
        if lst is None:
            continue
        assert isinstance(lst, list)
        depth = 0
        for addr in lst:
            assert isinstance(addr, list) and len(addr) == 4, addr
            assert all(_is_nstring(x) for x in addr)
            if addr[3] is None:  # group marker
                if addr[2] is None:
                    depth -= 1
                else:
                    depth += 1
                assert 0 <= depth <= 1
        assert depth == 0


def check_body(b, extended: bool) -> None:
    """Check a parsed BODY/BODYSTRUCTURE against RFC 3501 section 9 grammar."""
    assert isinstance(b, list) and b, b
    if isinstance(b[0], list):
        i = 0
        while i < len(b) and isinstance(b[i], list):
            check_body(b[i], extended)
            i += 1
        assert i >= 1 and isinstance(b[i], str)
        rest = b[i + 1 :]
        if extended:
            _check_ext(rest, True)
        else:
            assert rest == []
        return
    assert isinstance(b[0], str) and isinstance(b[1], str)
    _check_params(b[2])
    assert _is_nstring(b[3]) and _is_nstring(b[4])
    assert isinstance(b[5], str)
    assert isinstance(b[6], int) and b[6] >= 0
    rest = b[7:]
    if b[0].upper() == "MESSAGE" and b[1].upper() == "RFC822":
        check_envelope(rest[0])
        check_body(rest[1], extended)
        assert isinstance(rest[2], int)
        rest = rest[3:]
    elif b[0].upper() == "TEXT":
        assert isinstance(rest[0], int)
        rest = rest[1:]
    if extended:
        _check_ext(rest, False)
    else:
        assert rest == []


def imaplib_records(line: bytes) -> list:
    """Split a response line into the records imaplib would hand back."""
    out = []
    pos = 0
    lit = re.compile(rb"\{(\d+)\}\r\n")
    while True:
        m = lit.search(line, pos)
        if not m:
            out.append(line[pos:])
            return out
        n = int(m.group(1))
        out.append(
            (line[pos : m.start() + len(m.group(0)) - 2], line[m.end() : m.end() + n])
        )
        pos = m.end() + n


def check_all(parsed) -> None:
    """Every rendered structure must be strictly valid and imapclient-parsable."""
    env = imap_parse_value(parsed.envelope)
    check_envelope(env)
    check_body(imap_parse_value(parsed.body), False)
    check_body(imap_parse_value(parsed.bodystructure), True)
    line = (
        f"1 (ENVELOPE {parsed.envelope} BODY {parsed.body} "
        f"BODYSTRUCTURE {parsed.bodystructure})"
    ).encode()
    res = parse_fetch_response(imaplib_records(line))
    assert set(res[1]) >= {b"ENVELOPE", b"BODY", b"BODYSTRUCTURE"}


@pytest.fixture
def imap_parse():
    return imap_parse_value


@pytest.fixture
def check():
    return check_all
