"""IMAP ENVELOPE rendering (RFC 3501 sections 7.4.2 and 9).

Field values are the raw (unfolded) header values: RFC 2047 encoded words
are not decoded.  Sender and Reply-To default to From when absent or empty.
"""

from __future__ import annotations

from .address import Address, parse_address_list
from .headers import Header
from .imapstr import NIL, nstring


def render_address_list(addresses: list[Address]) -> str:
    """``(("name" NIL "mailbox" "host")...)`` or NIL for an empty list."""
    if not addresses:
        return NIL
    return (
        "("
        + "".join(
            f"({nstring(n)} {nstring(a)} {nstring(m)} {nstring(h)})"
            for n, a, m, h in addresses
        )
        + ")"
    )


def envelope_fields(headers: list[Header]) -> dict[str, str]:
    """First occurrence of each header the ENVELOPE needs."""
    wanted = {
        "date",
        "subject",
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "in-reply-to",
        "message-id",
    }
    found: dict[str, str] = {}
    for name, value in headers:
        if name in wanted and name not in found:
            found[name] = value
    return found


def render_envelope(
    headers: list[Header], parsed: dict[str, list[Address]] | None = None
) -> str:
    """Render the ENVELOPE structure for a header block.

    ``parsed`` may carry already-parsed address lists (keys ``from`` ...) so
    callers that also need the addr-specs parse each header only once.
    """
    f = envelope_fields(headers)
    lists: dict[str, list[Address]] = {}
    for key in ("from", "sender", "reply-to", "to", "cc", "bcc"):
        if parsed is not None and key in parsed:
            lists[key] = parsed[key]
        else:
            lists[key] = parse_address_list(f.get(key))
    if not lists["sender"]:
        lists["sender"] = lists["from"]
    if not lists["reply-to"]:
        lists["reply-to"] = lists["from"]
    parts = [
        nstring(f.get("date")),
        nstring(f.get("subject")),
        render_address_list(lists["from"]),
        render_address_list(lists["sender"]),
        render_address_list(lists["reply-to"]),
        render_address_list(lists["to"]),
        render_address_list(lists["cc"]),
        render_address_list(lists["bcc"]),
        nstring(f.get("in-reply-to")),
        nstring(f.get("message-id")),
    ]
    return "(" + " ".join(parts) + ")"
