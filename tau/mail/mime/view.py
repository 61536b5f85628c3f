"""The REST view of one message (``GET /api/emails/{id}``), within the budgets BODYSTRUCTURE has.

The stdlib ``email`` package recurses once per nesting level (a 10,000-deep message was a
RecursionError, an HTTP 500) and decodes every part (100,000 parts took 28 s). So the message is
first parsed with tau's own tree, as at delivery for IMAP (linear; :data:`tree.MAX_DEPTH` levels,
:data:`tree.MAX_PARTS` parts per multipart). An ordinary message (at most :data:`STDLIB_PARTS`
entities, :data:`STDLIB_DEPTH` levels) is then rendered by ``email`` exactly as before; any other
is rendered from tau's tree: the first :data:`MAX_LISTED` entities, within :data:`VIEW_SECONDS`,
with ``"truncated": true``. Part numbers are ``email``'s ``walk()`` order either way (what
``/api/emails/{id}/attachments/{n}/save`` takes).
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from email.parser import BytesParser
from typing import Any

from . import tree
from .charset import decode_bytes, decode_rfc2047, transfer_decode
from .headers import get, param, parse_disposition
from .text import MAX_RAW_PER_PART

STDLIB_PARTS = 1000      # entities up to which the stdlib renders the message (as before)
STDLIB_DEPTH = 30        # nesting up to which the stdlib renders the message
MAX_LISTED = 1000        # entities a truncated view walks
VIEW_SECONDS = 2.0       # wall time a truncated view may take to decode parts
MAX_HEADERS = 200


def render(raw: bytes) -> dict[str, Any]:
    """headers, text, html, attachment metadata and ``truncated`` (blocking; run in a thread)."""
    root = tree.parse_entity(raw, 0, len(raw))
    if _ordinary(root):
        try:
            return {**_render_stdlib(raw), "truncated": False}
        except RecursionError:
            pass
    return _render_tree(raw, root)


def is_ordinary(raw: bytes) -> bool:
    """Whether the stdlib ``email`` package may parse ``raw`` (bounded work, no RecursionError)."""
    return _ordinary(tree.parse_entity(raw, 0, len(raw)))


def _walk(root: tree.Node) -> Iterator[tuple[tree.Node, int]]:
    """(entity, depth) in ``email``'s walk() order: an entity, then its parts or its message."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if node.children:
            stack.extend((c, depth + 1) for c in reversed(node.children))
        elif node.message is not None:
            stack.append((node.message, depth + 1))


def _ordinary(root: tree.Node) -> bool:
    for count, (node, depth) in enumerate(_walk(root), 1):
        if count > STDLIB_PARTS or depth >= STDLIB_DEPTH or len(node.children) >= tree.MAX_PARTS:
            return False
    return True


def _render_stdlib(raw: bytes) -> dict[str, Any]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [[k, str(v)] for k, v in msg.items()][:MAX_HEADERS]
    text = html = None
    attachments = []
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        if disposition != "attachment" and ctype == "text/plain" and text is None:
            text = _content(part)
        elif disposition != "attachment" and ctype == "text/html" and html is None:
            html = _content(part)
        else:
            payload = part.get_payload(decode=True) or b""
            attachments.append({"part": index, "filename": part.get_filename(), "content_type": ctype,
                                "size": len(payload)})
    return {"headers": headers, "text": text, "html": html, "attachments": attachments}


def _content(part: Any) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, ValueError):
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


def _render_tree(raw: bytes, root: tree.Node) -> dict[str, Any]:
    top = BytesParser(policy=email.policy.default).parsebytes(raw[:root.body_start], headersonly=True)
    headers = [[k, str(v)] for k, v in top.items()][:MAX_HEADERS]
    text = html = None
    attachments = []
    deadline = time.monotonic() + VIEW_SECONDS
    for index, (node, _depth) in enumerate(_walk(root)):
        if index >= MAX_LISTED or time.monotonic() > deadline:
            break
        if node.children or node.message is not None:
            continue  # containers, as email's is_multipart()
        inline = not _is_attachment(node)
        if inline and node.content_type == "text/plain" and text is None:
            text = _decoded_text(raw, node)
        elif inline and node.content_type == "text/html" and html is None:
            html = _decoded_text(raw, node)
        else:
            attachments.append({"part": index, "filename": _filename(node), "content_type": node.content_type,
                                "size": len(_payload(raw, node))})
    return {"headers": headers, "text": text, "html": html, "attachments": attachments, "truncated": True}


def _is_attachment(node: tree.Node) -> bool:
    d = parse_disposition(get(node.headers, "content-disposition"))
    return d is not None and d[0].lower() == "attachment"


def _filename(node: tree.Node) -> str | None:
    d = parse_disposition(get(node.headers, "content-disposition"))
    name = (param(d[1], "FILENAME") if d is not None else None) or param(node.params, "NAME")
    return decode_rfc2047(name) if name else None


def _payload(raw: bytes, node: tree.Node) -> bytes:
    return transfer_decode(raw[node.body_start:min(node.end, node.body_start + MAX_RAW_PER_PART)], node.encoding)


def _decoded_text(raw: bytes, node: tree.Node) -> str:
    text = decode_bytes(_payload(raw, node), param(node.params, "CHARSET"))
    return text.replace("\r\n", "\n")
