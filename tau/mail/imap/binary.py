"""FETCH ``BINARY[section]<partial>``, ``BINARY.PEEK`` and ``BINARY.SIZE`` (RFC 3516): a part's
content with its Content-Transfer-Encoding undone by the server.

The encoding comes from the part's own MIME header (read from the blob, a few hundred octets);
the body range is read and decoded, then the partial window applies to the decoded octets.
Quoted-printable follows RFC 2045 §6.7: ``=XX`` (either case), soft line breaks (``=`` at the end
of a line, whitespace after it allowed), and whitespace at the end of a line removed (transport
padding); a malformed ``=`` stays as it is. Base64 skips anything outside its alphabet. Data
with NUL goes out as ``~{n}`` (literal8, RFC 3516 §4.3). Unknown encodings are ``NO
[UNKNOWN-CTE]`` (§4.3). ``BINARY[]`` is the whole message as stored.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any

from tau.mail.mime import ParsedMessage, part_by_section, section_range
from tau.mail.mime.charset import b64decode
from tau.mail.mime.headers import get, scan_header, simple_token

from .base import No
from .parser import ParseError, Parser

IDENTITY = ("7bit", "8bit", "binary", "")
DECODABLE = ("base64", "quoted-printable")


@dataclass(frozen=True)
class BinaryItem:
    label: str                     # "BINARY[1.2]" or "BINARY.SIZE[1.2]"
    section: str
    partial: tuple[int, int] | None = None
    peek: bool = True
    size_only: bool = False


def parse_binary(p: Parser, word: str) -> BinaryItem:
    """After ``BINARY[`` / ``BINARY.PEEK[`` / ``BINARY.SIZE[``: ``section-part] [<o.c>]``."""
    raw = p.take_while(frozenset(b"0123456789.")).decode("ascii")
    if raw and (raw.startswith(".") or raw.endswith(".") or ".." in raw
                or any(n.startswith("0") for n in raw.split("."))):
        raise ParseError("bad binary section")
    p.expect(b"]")
    partial = None
    if word != "BINARY.SIZE" and p.take(b"<"):
        origin = p.number()
        p.expect(b".")
        count = p.number(nz=True)
        p.expect(b">")
        partial = (origin, count)
    size_only = word == "BINARY.SIZE"
    label = ("BINARY.SIZE" if size_only else "BINARY") + f"[{raw}]"
    return BinaryItem(label, raw, partial, peek=word != "BINARY", size_only=size_only)


async def render(conn: Any, blob_key: str, size: int, parsed: ParsedMessage | None, item: BinaryItem) -> bytes:
    """The response item for one message."""
    data = await _decoded(conn, blob_key, size, parsed, item.section)
    if data is None:
        return item.label.encode() + b" NIL"
    if item.size_only:
        return b"%s %d" % (item.label.encode(), len(data))
    label = item.label
    if item.partial is not None:
        origin, count = item.partial
        data = data[origin:origin + count]
        label += f"<{origin}>"
    tilde = b"~" if b"\x00" in data else b""
    return b"%s %s{%d}\r\n%s" % (label.encode(), tilde, len(data), data)


async def _decoded(conn: Any, blob_key: str, size: int, parsed: ParsedMessage | None, section: str) -> bytes | None:
    if section == "":
        return await conn.store.read(blob_key, 0, size) if size else b""
    if parsed is None:
        return None
    part = part_by_section(parsed, section)
    body = section_range(parsed, section, "")
    if part is None or body is None:
        return None
    encoding = ""
    if not part.content_type.startswith(("multipart/", "message/")):
        head = section_range(parsed, section, "MIME")
        if head is not None and head[1] > head[0]:
            header = await conn.store.read(blob_key, head[0], head[1])
            fields, _ = scan_header(header, 0, len(header))
            encoding = (simple_token(get(fields, "content-transfer-encoding")) or "").lower()
    if encoding not in IDENTITY and encoding not in DECODABLE:
        raise No(f"Unknown Content-Transfer-Encoding {encoding[:40]}", "UNKNOWN-CTE")
    raw = await conn.store.read(blob_key, body[0], body[1]) if body[1] > body[0] else b""
    if encoding == "base64":
        return b64decode(raw)
    return decode_qp(raw) if encoding == "quoted-printable" else raw


_QP_LAYOUT = re.compile(rb"[ \t]+(?=\r?\n|\Z)|=[ \t]*(?:\r?\n|\Z)")  # trailing blanks, soft breaks


def decode_qp(data: bytes) -> bytes:
    """Quoted-printable body → octets (RFC 2045 §6.7), line ends kept as sent."""
    return binascii.a2b_qp(_QP_LAYOUT.sub(b"", data))
