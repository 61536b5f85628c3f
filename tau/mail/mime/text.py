"""Decoded text extraction for previews and SEARCH BODY/TEXT (RFC 3501 6.4.4).

Only text/* leaves are decoded (transfer encoding, then charset); HTML is
reduced to text.  Work is bounded: at most :data:`MAX_RAW_PER_PART` raw
octets are decoded per part and the result is capped at
:data:`MAX_SEARCH_TEXT` characters.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from .charset import decode_bytes, transfer_decode
from .headers import get, param, parse_disposition
from .tree import Node

MAX_SEARCH_TEXT = 1_000_000
MAX_RAW_PER_PART = 4 * 1024 * 1024
PREVIEW_CHARS = 200
_PREVIEW_RAW = 64 * 1024

_TAG = re.compile(r"<[/!?]?[A-Za-z][^<>]*>")
_SPACE = re.compile(r"\s+")
_BLOCK_START = re.compile(r"<(script|style|head)\b|<!--", re.IGNORECASE)
_BLOCK_END = {
    "script": re.compile(r"</script\b[^>]*>", re.IGNORECASE),
    "style": re.compile(r"</style\b[^>]*>", re.IGNORECASE),
    "head": re.compile(r"</head\b[^>]*>", re.IGNORECASE),
    None: re.compile(r"-->"),
}


def html_to_text(s: str) -> str:
    """Strip tags, scripts, styles, head and comments; unescape entities.
    Linear in the input size."""
    out: list[str] = []
    pos = 0
    while True:
        m = _BLOCK_START.search(s, pos)
        if m is None:
            out.append(s[pos:])
            break
        out.append(s[pos : m.start()])
        name = m.group(1)
        e = _BLOCK_END[name.lower() if name else None].search(s, m.end())
        if e is None:
            break
        out.append(" ")
        pos = e.end()
    text = _TAG.sub(" ", "".join(out))
    return html.unescape(text)


def collapse(s: str) -> str:
    """Collapse runs of whitespace into one space and trim."""
    return _SPACE.sub(" ", s).strip()


def is_attachment(node: Node) -> bool:
    d = parse_disposition(get(node.headers, "content-disposition"))
    return d is not None and d[0].lower() == "attachment"


def decode_text(raw: bytes, node: Node, limit: int = MAX_RAW_PER_PART) -> str:
    """Decoded text of a text/* leaf (at most ``limit`` raw octets)."""
    end = min(node.end, node.body_start + limit)
    if end <= node.body_start:
        return ""
    data = transfer_decode(raw[node.body_start : end], node.encoding)
    text = decode_bytes(data, param(node.params, "CHARSET"))
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if node.msub == "html":
        text = html_to_text(text)
    return text


def text_leaves(node: Node) -> Iterator[Node]:
    """Yield text/* leaves depth-first, descending into message/rfc822."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.children:
            stack.extend(reversed(n.children))
        elif n.message is not None:
            stack.append(n.message)
        elif n.mtype == "text":
            yield n


def preview(raw: bytes, root: Node) -> str:
    """First ~200 characters of the first inline text/plain part, else of the
    first inline text/html part, whitespace collapsed.  Attached messages
    are not looked into."""
    candidates: list[Node] = []
    stack = [root]
    while stack:
        n = stack.pop()
        if n.children:
            stack.extend(reversed(n.children))
        elif n.mtype == "text" and not is_attachment(n):
            candidates.append(n)
    for sub in ("plain", "html"):
        for n in candidates:
            if n.msub == sub:
                text = collapse(decode_text(raw, n, _PREVIEW_RAW))
                if text:
                    return text[:PREVIEW_CHARS]
    return ""


def search_text(raw: bytes, root: Node) -> str:
    """Decoded text of every text/* part, joined by newlines, capped."""
    out: list[str] = []
    total = 0
    for n in text_leaves(root):
        remaining = MAX_SEARCH_TEXT - total
        if remaining <= 0:
            break
        text = decode_text(raw, n, min(MAX_RAW_PER_PART, remaining * 4 + 64))
        if not text:
            continue
        text = text[:remaining]
        out.append(text)
        total += len(text) + 1
    return "\n".join(out)[:MAX_SEARCH_TEXT]
