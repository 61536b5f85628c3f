"""ManageSieve command syntax (RFC 5804 §4): an atom, then strings (quoted or literal) and numbers.

``take_command(buffer)`` returns the command and its arguments and how many bytes they used, or
None while the command is incomplete; ``WireError`` for what can never become a command.
Literals are ``{N+}`` (RFC 5804) or ``{N}`` (accepted the same; no continuation is needed).
"""

from __future__ import annotations

import re

_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r\n")
_NUMBER = re.compile(rb"\d{1,10}")
_ATOM = re.compile(rb"[A-Za-z]+")


class WireError(Exception):
    pass


def quote(text: str) -> bytes:
    data = text.encode("utf-8")
    if b"\r" in data or b"\n" in data or b"\0" in data or len(data) > 1024:
        return b"{%d}\r\n%s" % (len(data), data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _quoted(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    out = bytearray()
    i = pos + 1
    while i < len(buf):
        ch = buf[i]
        if ch == 0x5C:        # backslash
            if i + 1 >= len(buf):
                return None
            out.append(buf[i + 1])
            i += 2
        elif ch == 0x22:
            return bytes(out), i + 1
        elif ch in (0x0D, 0x0A):
            raise WireError("line break in a quoted string")
        else:
            out.append(ch)
            i += 1
    return None


def take_command(buf: bytes, max_literal: int) -> tuple[str, list[bytes | int], int] | None:
    """(COMMAND, arguments, bytes used) of the first complete command in ``buf``."""
    atom = _ATOM.match(buf)
    if atom is None:
        if b"\r\n" in buf[:64] or len(buf) >= 64:
            raise WireError("expected a command name")
        return None
    name, pos = atom.group(0).decode().upper(), atom.end()
    args: list[bytes | int] = []
    while True:
        if buf[pos:pos + 2] == b"\r\n":
            return name, args, pos + 2
        if pos >= len(buf) or (pos + 1 == len(buf) and buf[pos:] == b"\r"):
            return None
        if buf[pos:pos + 1] != b" ":
            raise WireError("expected a space or the end of the line")
        pos += 1
        while buf[pos:pos + 1] == b" ":
            pos += 1
        if pos >= len(buf):
            return None
        first = buf[pos:pos + 1]
        if first == b'"':
            got = _quoted(buf, pos)
            if got is None:
                return None
            args.append(got[0])
            pos = got[1]
        elif first == b"{":
            literal = _LITERAL.match(buf, pos)
            if literal is None:
                if b"\r\n" in buf[pos:pos + 16] or len(buf) - pos >= 16:
                    raise WireError("malformed literal")
                return None
            size = int(literal.group(1))
            if size > max_literal:
                raise WireError(f"literal of {size} bytes is too large")
            if len(buf) < literal.end() + size:
                return None
            args.append(buf[literal.end():literal.end() + size])
            pos = literal.end() + size
        elif (number := _NUMBER.match(buf, pos)) is not None:
            args.append(int(number.group(0)))
            pos = number.end()
        else:
            raise WireError("expected a string or a number")
