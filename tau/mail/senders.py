"""Who a message says it is from: its From and Sender fields, read one way for every check.

Submission binds them to the authenticated user (``tau.mail.smtp.delivery``) and iMIP applies a
scheduling message as coming from its From (``tau.calendar.imip``). Both must read the same
addresses out of the same bytes, or a message could pass one reading and be displayed or applied
under another. So the header is split here, obsolete syntax included (``From :`` with white space
before the colon, RFC 5322 §4.5.8, which Python's parser takes for an mbox line), and an address
list counts only when the standard library's two address parsers agree on it and neither finds
it invalid; anything else is ``Ambiguous`` and refused (CVE-2023-27043 is one such disagreement).
"""

from __future__ import annotations

import email.errors
import email.policy
import re
from collections.abc import Iterable
from email.utils import getaddresses

HEADER_LIMIT = 256 * 1024            # bytes of header read for these checks
#: every field that names who sent a message, the resent ones (RFC 5322 §3.6.6) included
SENDER_FIELDS = ("from", "sender", "resent-from", "resent-sender")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_SPECIALS = set("\"<>()[],;:\\")


class Ambiguous(ValueError):
    """An address field that cannot be read unambiguously (or a header too big to read)."""


def header_block(raw: bytes) -> bytes:
    """The header section of ``raw``: everything before the first empty line."""
    if raw.startswith((b"\r\n", b"\n")):
        return b""
    end = re.search(rb"\r?\n\r?\n", raw)
    return raw if end is None else raw[: end.start() + 1]


def field_values(head: bytes, names: Iterable[str] = SENDER_FIELDS) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of every field called one of ``names``, in order.

    A name is what precedes the first colon with surrounding white space removed, so ``From :``
    counts; lines that are not fields (no colon) are skipped, not taken as the end of the header."""
    wanted = {n.lower() for n in names}
    out = []
    for line in _FOLD.sub(b" ", head).splitlines():
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip(b" \t").decode("latin-1").lower()
        if key in wanted:
            out.append((key, value.decode("utf-8", "surrogateescape").strip()))
    return out


def addresses(value: str) -> list[str]:
    """The lower-cased addr-specs of one address-list field value; ``Ambiguous`` unless the
    two parsers agree and every address has a local part and a domain."""
    loose = [addr.strip().lower() for name, addr in getaddresses([value]) if name or addr]
    header = email.policy.default.header_factory("from", value)
    if any(isinstance(d, email.errors.InvalidHeaderDefect) for d in header.defects):
        raise Ambiguous(f"address field not understood: {value[:200]!r}")
    strict = [a.addr_spec.strip().lower() for a in header.addresses]
    if loose != strict:
        raise Ambiguous(f"address field read two ways: {value[:200]!r}")
    for addr in strict:
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain or any(c in _SPECIALS or ord(c) < 0x21 or ord(c) == 0x7F
                                                     or 0xD800 <= ord(c) <= 0xDFFF for c in addr):
            raise Ambiguous(f"not an address: {addr[:200]!r}")
    return strict


def claimed(head: bytes) -> list[str]:
    """Every address in every From, Sender, Resent-From and Resent-Sender field (``Ambiguous``
    when one is unreadable)."""
    return [addr for _, value in field_values(head) for addr in addresses(value)]


def author(raw: bytes) -> str:
    """The one From address of a message, or "" (no From, several, or an unreadable one)."""
    froms = [v for _, v in field_values(header_block(raw), ("from",))]
    if len(froms) != 1:
        return ""
    try:
        found = addresses(froms[0])
    except Ambiguous:
        return ""
    return found[0] if len(found) == 1 else ""


class HeaderCapture:
    """Keeps the header section of a message that arrives in pieces (at most HEADER_LIMIT)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.complete = False
        self.overflow = False

    def feed(self, data: bytes) -> None:
        if self.complete or self.overflow:
            return
        start = max(0, len(self._buf) - 3)
        self._buf += data
        if self._buf.startswith(b"\r\n") or self._buf.find(b"\r\n\r\n", start) >= 0:
            self.complete = True
            self._buf[:] = header_block(bytes(self._buf))
        elif len(self._buf) > HEADER_LIMIT:
            self.overflow = True
            self._buf.clear()

    def header(self) -> bytes:
        """The header; ``Ambiguous`` when it was longer than HEADER_LIMIT."""
        if self.overflow:
            raise Ambiguous("message header too large to check")
        return bytes(self._buf)
