"""Parse a message once, at delivery, into everything IMAP needs.

Section numbering follows RFC 3501 section 6.4.5: the parts of a multipart
are numbered 1..n; a non-multipart message (or encapsulated message) has a
single part "1", its body; the parts of an encapsulated message/rfc822 part
N are numbered N.1, N.2 ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .address import Address, addr_specs, parse_address_list
from .bodystructure import render_both
from .charset import decode_rfc2047
from .envelope import envelope_fields, render_envelope
from .text import preview as make_preview
from .text import search_text
from .tree import Node, parse_entity


@dataclass(frozen=True)
class PartInfo:
    """One MIME part, addressed by IMAP section number (RFC 3501 6.4.5).

    ``[header_start, body_start)`` is the part's MIME header (BODY[n.MIME]),
    ``[body_start, end)`` its body (BODY[n]).  For a message/rfc822 part,
    ``inner_body_start`` is where the encapsulated message's body starts, so
    ``[body_start, inner_body_start)`` is BODY[n.HEADER] and
    ``[inner_body_start, end)`` BODY[n.TEXT]; it is -1 otherwise.
    """

    section: str
    header_start: int
    body_start: int
    end: int
    content_type: str
    is_message_rfc822: bool
    inner_body_start: int = -1


@dataclass(frozen=True)
class ParsedMessage:
    """Everything the IMAP server and the store need about one message."""

    size: int
    envelope: str
    body: str
    bodystructure: str
    parts: tuple[PartInfo, ...]
    headers: tuple[tuple[str, str], ...]
    subject: str
    from_addrs: tuple[str, ...]
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    bcc_addrs: tuple[str, ...]
    message_id: str | None
    in_reply_to: str | None
    date: datetime | None
    preview: str
    text_for_search: str


def _part(section: str, node: Node) -> PartInfo:
    msg = node.message
    return PartInfo(
        section=section,
        header_start=node.header_start,
        body_start=node.body_start,
        end=node.end,
        content_type=node.content_type,
        is_message_rfc822=msg is not None,
        inner_body_start=msg.body_start if msg is not None else -1,
    )


def _number_message(msg: Node, prefix: str, out: list[PartInfo]) -> None:
    """Number the parts of a (possibly encapsulated) message."""
    if msg.children:
        for i, child in enumerate(msg.children, 1):
            _number_entity(child, prefix + str(i), out)
    else:
        _number_entity(msg, prefix + "1", out)


def _number_entity(node: Node, section: str, out: list[PartInfo]) -> None:
    # iterative over siblings, recursive over depth (depth is capped at 50)
    out.append(_part(section, node))
    if node.children:
        for i, child in enumerate(node.children, 1):
            _number_entity(child, section + "." + str(i), out)
    elif node.message is not None:
        _number_message(node.message, section + ".", out)


def number_parts(root: Node) -> tuple[PartInfo, ...]:
    """All parts of the message, the whole message first as section ""."""
    out = [
        PartInfo(
            section="",
            header_start=root.header_start,
            body_start=root.body_start,
            end=root.end,
            content_type=root.content_type,
            is_message_rfc822=False,
        )
    ]
    _number_message(root, "", out)
    return tuple(out)


def parse_date(value: str | None) -> datetime | None:
    """RFC 5322 section 3.3 date, as an aware datetime, or None."""
    if not value:
        return None
    try:
        d = parsedate_to_datetime(value)
    except Exception:  # noqa: BLE001
        return None
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` (RFC 5322 / MIME).  Never raises."""
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    try:
        return _parse(raw)
    except Exception:  # noqa: BLE001
        return _fallback(raw)


def _parse(raw: bytes) -> ParsedMessage:
    root = parse_entity(raw, 0, len(raw))
    hdrs = root.headers
    f = envelope_fields(hdrs)
    lists: dict[str, list[Address]] = {
        k: parse_address_list(f.get(k))
        for k in ("from", "sender", "reply-to", "to", "cc", "bcc")
    }
    body, bodystructure = render_both(raw, root)
    return ParsedMessage(
        size=len(raw),
        envelope=render_envelope(hdrs, lists),
        body=body,
        bodystructure=bodystructure,
        parts=number_parts(root),
        headers=tuple((n, decode_rfc2047(v)) for n, v in hdrs),
        subject=decode_rfc2047(f.get("subject", "")),
        from_addrs=tuple(addr_specs(lists["from"])),
        to_addrs=tuple(addr_specs(lists["to"])),
        cc_addrs=tuple(addr_specs(lists["cc"])),
        bcc_addrs=tuple(addr_specs(lists["bcc"])),
        message_id=f.get("message-id") or None,
        in_reply_to=f.get("in-reply-to") or None,
        date=parse_date(f.get("date")),
        preview=make_preview(raw, root),
        text_for_search=search_text(raw, root),
    )


def _fallback(raw: bytes) -> ParsedMessage:
    n = len(raw)
    lines = raw.count(b"\n") + (1 if n and raw[-1] != 10 else 0)
    basic = f'"TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" {n} {lines}'
    return ParsedMessage(
        size=n,
        envelope="(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        body="(" + basic + ")",
        bodystructure="(" + basic + " NIL NIL NIL NIL)",
        parts=(
            PartInfo("", 0, 0, n, "text/plain", False),
            PartInfo("1", 0, 0, n, "text/plain", False),
        ),
        headers=(),
        subject="",
        from_addrs=(),
        to_addrs=(),
        cc_addrs=(),
        bcc_addrs=(),
        message_id=None,
        in_reply_to=None,
        date=None,
        preview="",
        text_for_search="",
    )


def part_by_section(parsed: ParsedMessage, section: str) -> PartInfo | None:
    """The part with IMAP section number ``section`` ("" = whole message)."""
    for p in parsed.parts:
        if p.section == section:
            return p
    return None


# --- JSON (one DB column) ---------------------------------------------------

_JSON_VERSION = 1


def to_json(parsed: ParsedMessage) -> str:
    """Serialise to a compact, ASCII-only JSON string."""
    d = {
        "v": _JSON_VERSION,
        "size": parsed.size,
        "envelope": parsed.envelope,
        "body": parsed.body,
        "bodystructure": parsed.bodystructure,
        "parts": [
            [
                p.section,
                p.header_start,
                p.body_start,
                p.end,
                p.content_type,
                p.is_message_rfc822,
                p.inner_body_start,
            ]
            for p in parsed.parts
        ],
        "headers": [list(h) for h in parsed.headers],
        "subject": parsed.subject,
        "from": list(parsed.from_addrs),
        "to": list(parsed.to_addrs),
        "cc": list(parsed.cc_addrs),
        "bcc": list(parsed.bcc_addrs),
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "date": parsed.date.isoformat() if parsed.date is not None else None,
        "preview": parsed.preview,
        "text": parsed.text_for_search,
    }
    return json.dumps(d, separators=(",", ":"))


def from_json(s: str) -> ParsedMessage:
    """Inverse of :func:`to_json`."""
    d = json.loads(s)
    date = d.get("date")
    return ParsedMessage(
        size=int(d["size"]),
        envelope=d["envelope"],
        body=d["body"],
        bodystructure=d["bodystructure"],
        parts=tuple(
            PartInfo(
                p[0],
                int(p[1]),
                int(p[2]),
                int(p[3]),
                p[4],
                bool(p[5]),
                int(p[6]) if len(p) > 6 else -1,
            )
            for p in d["parts"]
        ),
        headers=tuple((h[0], h[1]) for h in d.get("headers", ())),
        subject=d.get("subject", ""),
        from_addrs=tuple(d.get("from", ())),
        to_addrs=tuple(d.get("to", ())),
        cc_addrs=tuple(d.get("cc", ())),
        bcc_addrs=tuple(d.get("bcc", ())),
        message_id=d.get("message_id"),
        in_reply_to=d.get("in_reply_to"),
        date=datetime.fromisoformat(date) if date else None,
        preview=d.get("preview", ""),
        text_for_search=d.get("text", ""),
    )
