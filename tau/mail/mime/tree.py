"""MIME entity tree with byte offsets into the raw message.

RFC 2045/2046 (entities, multipart boundaries: the CRLF before a delimiter
belongs to the delimiter, section 5.1.1), RFC 2046 section 5.1.5 (digest
default type message/rfc822).  Malformed structure degrades gracefully:
missing closing delimiter ends the last part at the parent's end, a
multipart whose boundary never appears gets one synthetic text/plain part
spanning its body, nesting deeper than :data:`MAX_DEPTH` is opaque.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .headers import (
    Header,
    get,
    param,
    parse_content_type,
    scan_header,
    simple_token,
)

MAX_DEPTH = 50
#: Parts beyond this many in one multipart are folded into the last one.
MAX_PARTS = 10000

_DEFAULT_TEXT = ("text", "plain", [("CHARSET", "US-ASCII")])
_DEFAULT_DIGEST = ("message", "rfc822", [])
_IDENTITY = ("", "7bit", "8bit", "binary")


class Node:
    """One MIME entity: its header ``[header_start, body_start)`` and body
    ``[body_start, end)``; ``children`` for multipart, ``message`` for an
    encapsulated message/rfc822."""

    __slots__ = (
        "body_start",
        "children",
        "encoding",
        "end",
        "header_start",
        "headers",
        "message",
        "msub",
        "mtype",
        "params",
    )

    def __init__(
        self, header_start: int, body_start: int, end: int, headers: list[Header]
    ):
        self.header_start = header_start
        self.body_start = body_start
        self.end = end
        self.headers = headers
        self.mtype = "text"
        self.msub = "plain"
        self.params: list[tuple[str, str]] = []
        self.encoding = "7BIT"
        self.children: list[Node] = []
        self.message: Node | None = None

    @property
    def content_type(self) -> str:
        return self.mtype + "/" + self.msub

    @property
    def is_multipart(self) -> bool:
        return bool(self.children)


def parse_entity(
    raw: bytes,
    start: int,
    end: int,
    depth: int = 0,
    default: tuple = _DEFAULT_TEXT,
    no_header: bool = False,
) -> Node:
    """Parse the entity at ``raw[start:end]`` recursively."""
    if no_header:
        headers, body_start = [], start
    else:
        headers, body_start = scan_header(raw, start, end)
    node = Node(start, body_start, end, headers)
    ct_value = get(headers, "content-type")
    ct = parse_content_type(ct_value)
    if ct is None:
        # missing: context default; unparseable: text/plain (RFC 2045 5.2)
        ct = default if ct_value is None else _DEFAULT_TEXT
    node.mtype, node.msub, node.params = ct[0], ct[1], list(ct[2])
    enc = simple_token(get(headers, "content-transfer-encoding"))
    node.encoding = enc.upper() if enc else "7BIT"

    if node.mtype == "multipart":
        boundary = param(node.params, "BOUNDARY")
        if not boundary or depth >= MAX_DEPTH:
            _make_opaque(node, depth)
            return node
        child_default = _DEFAULT_DIGEST if node.msub == "digest" else _DEFAULT_TEXT
        ranges = split_multipart(
            raw, body_start, end, boundary.encode("utf-8", "replace")
        )
        if not ranges:
            node.children = [
                parse_entity(
                    raw, body_start, body_start, depth + 1, _DEFAULT_TEXT, True
                )
            ]
            node.children[0].end = end
            return node
        node.children = [
            parse_entity(raw, s, e, depth + 1, child_default) for s, e in ranges
        ]
    elif node.mtype == "message" and node.msub == "rfc822":
        if depth >= MAX_DEPTH or node.encoding.lower() not in _IDENTITY:
            return node  # opaque: rendered with an empty envelope and body
        node.message = parse_entity(raw, body_start, end, depth + 1)
    return node


def _make_opaque(node: Node, depth: int) -> None:
    """Multipart we cannot (or will not) descend into."""
    if depth >= MAX_DEPTH:
        node.mtype, node.msub, node.params = "application", "octet-stream", []
    else:  # no boundary: RFC 2045 section 5.2 default
        node.mtype, node.msub, node.params = (
            _DEFAULT_TEXT[0],
            _DEFAULT_TEXT[1],
            list(_DEFAULT_TEXT[2]),
        )


def _line_start_before(raw: bytes, idx: int, lo: int) -> int:
    """Where the content before a delimiter at ``idx`` ends (drop its CRLF)."""
    if idx - 2 >= lo and raw[idx - 2 : idx] == b"\r\n":
        return idx - 2
    if idx - 1 >= lo and raw[idx - 1] == 10:
        return idx - 1
    return idx


@lru_cache(maxsize=128)
def _delimiter_re(boundary: bytes) -> re.Pattern[bytes]:
    # RFC 2046 5.1.1: delimiter = CRLF "--" boundary, close adds "--",
    # then optional transport padding up to the line end.
    return re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.MULTILINE)


def split_multipart(
    raw: bytes, start: int, end: int, boundary: bytes
) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` byte ranges of the body parts between
    ``--boundary`` delimiter lines in ``raw[start:end]`` (RFC 2046 5.1.1).

    Delimiter lines must start a line and may only be followed by ``--``
    (close) and transport padding.  Linear in the body size.
    """
    ranges: list[tuple[int, int]] = []
    part_start = -1
    for m in _delimiter_re(boundary).finditer(raw, start, end):
        idx = m.start()
        if idx != start and raw[idx - 1] != 10:
            continue  # "^" also matches at the search start
        j = m.end()
        if j < end and raw[j] == 10:
            j += 1
        if part_start >= 0:
            pe = max(part_start, _line_start_before(raw, idx, part_start))
            if len(ranges) < MAX_PARTS:
                ranges.append((part_start, pe))
            else:
                ranges[-1] = (ranges[-1][0], pe)
        if m.group(1):
            return ranges
        part_start = j
    if part_start >= 0:
        # missing close-delimiter: the last part runs to the end
        if len(ranges) < MAX_PARTS:
            ranges.append((part_start, end))
        else:
            ranges[-1] = (ranges[-1][0], end)
    return ranges
