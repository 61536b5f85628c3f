"""BODY and BODYSTRUCTURE rendering (RFC 3501 sections 7.4.2 and 9).

Type and subtype are upper-cased, parameter names upper-cased, values kept
as sent.  Sizes are octets of the encoded body as stored; line counts are
the number of lines of the stored body (a final line without a line break
counts as a line).
"""

from __future__ import annotations

from .envelope import render_envelope
from .headers import get, parse_disposition
from .imapstr import NIL, nstring
from .tree import Node

EMPTY_ENVELOPE = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
EMPTY_BODY = '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)'
EMPTY_BODYSTRUCTURE = (
    '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)'
)


def count_lines(raw: bytes, start: int, end: int) -> int:
    """Lines in ``raw[start:end]``: LFs, plus one for an unterminated last line."""
    if end <= start:
        return 0
    n = raw.count(b"\n", start, end)
    if raw[end - 1] != 10:
        n += 1
    return n


def _params(params: list[tuple[str, str]]) -> str:
    if not params:
        return NIL
    return "(" + " ".join(nstring(a) + " " + nstring(v) for a, v in params) + ")"


def _disposition(node: Node) -> str:
    d = parse_disposition(get(node.headers, "content-disposition"))
    if d is None:
        return NIL
    return "(" + nstring(d[0].upper()) + " " + _params(d[1]) + ")"


def _language(node: Node) -> str:
    value = get(node.headers, "content-language")
    if value is None:
        return NIL
    langs = [x.strip() for x in value.replace(" ", ",").split(",") if x.strip()]
    if not langs:
        return NIL
    return "(" + " ".join(nstring(x) for x in langs) + ")"


def _location(node: Node) -> str:
    value = get(node.headers, "content-location")
    if value is None:
        return NIL
    return nstring(value.replace(" ", "").replace("\t", ""))


def render_body(raw: bytes, node: Node, extended: bool) -> str:
    """Render ``node`` as BODY (``extended=False``) or BODYSTRUCTURE."""
    if node.children:
        inner = "".join(render_body(raw, c, extended) for c in node.children)
        out = inner + " " + nstring(node.msub.upper())
        if extended:
            ext = (
                _params(node.params),
                _disposition(node),
                _language(node),
                _location(node),
            )
            out += " " + " ".join(ext)
        return "(" + out + ")"

    size = max(0, node.end - node.body_start)
    params = node.params
    if node.mtype == "text" and not any(a == "CHARSET" for a, _ in params):
        params = params + [("CHARSET", "US-ASCII")]  # RFC 2045 section 5.2
    fields = [
        nstring(node.mtype.upper()),
        nstring(node.msub.upper()),
        _params(params),
        nstring(get(node.headers, "content-id")),
        nstring(get(node.headers, "content-description")),
        nstring(node.encoding),
        str(size),
    ]
    if node.message is not None:
        msg = node.message
        fields.append(render_envelope(msg.headers))
        fields.append(render_body(raw, msg, extended))
        fields.append(str(count_lines(raw, node.body_start, node.end)))
    elif node.mtype == "message" and node.msub == "rfc822":
        # encoded or too deep to parse: keep the message/rfc822 syntax valid
        fields.append(EMPTY_ENVELOPE)
        fields.append(EMPTY_BODYSTRUCTURE if extended else EMPTY_BODY)
        fields.append(str(count_lines(raw, node.body_start, node.end)))
    elif node.mtype == "text":
        fields.append(str(count_lines(raw, node.body_start, node.end)))
    if extended:
        fields.append(nstring(get(node.headers, "content-md5")))
        fields.append(_disposition(node))
        fields.append(_language(node))
        fields.append(_location(node))
    return "(" + " ".join(fields) + ")"


def render_both(raw: bytes, node: Node) -> tuple[str, str]:
    """``(BODY, BODYSTRUCTURE)`` for the top-level entity."""
    return render_body(raw, node, False), render_body(raw, node, True)
