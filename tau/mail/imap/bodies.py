"""FETCH body items: ``BODY[section]<partial>``, ``BODY.PEEK``, ``RFC822``, ``RFC822.HEADER``,
``RFC822.TEXT`` (RFC 3501 §6.4.5, §7.4.2).

Byte ranges come from the part offsets stored at delivery (``tau.mail.mime.section_range``), so
only the octets asked for are read from the blob store, never the whole message for a part.
Reads for a batch of messages go to the blob store in one thread job, small bodies through a
bounded cache of recent ones (``tau.mail.store.body_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau.mail.mime import ParsedMessage, filter_header_fields, section_range

from .parser import ASTRING_CHARS, ParseError, Parser

_SPEC_CHARS = frozenset(b"0123456789.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TEXT_SPECS = ("", "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


@dataclass(frozen=True)
class BodyItem:
    """One body item as requested; ``label`` is how the response names it."""

    label: str                     # "BODY[1.HEADER.FIELDS (SUBJECT)]", "RFC822", ...
    section: str                   # part number, "" for the whole message
    spec: str                      # one of _TEXT_SPECS
    fields: tuple[str, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = True              # False: sets \\Seen (RFC 3501 §6.4.5)

    @property
    def whole(self) -> bool:
        """Whole message: needs no part offsets."""
        return self.section == "" and self.spec == ""


def parse_section(p: Parser, peek: bool) -> BodyItem:
    """After ``BODY[`` / ``BODY.PEEK[``: section spec, ``]`` and an optional ``<origin.count>``."""
    raw = p.take_while(_SPEC_CHARS).decode("ascii").upper()
    nums: list[str] = []
    rest = raw
    while rest and rest[0].isdigit():
        num, _, rest = rest.partition(".")
        if not num.isdigit() or num[0] == "0":
            raise ParseError("bad section number")
        nums.append(num)
    section = ".".join(nums)
    if rest not in _TEXT_SPECS or (rest == "MIME" and not section) or (raw.endswith(".") and rest == ""):
        raise ParseError("bad section")
    fields: tuple[str, ...] = ()
    if rest.startswith("HEADER.FIELDS"):
        p.sp()
        p.expect(b"(")
        names = [p.astring().decode("ascii", "replace")]
        while p.take(b" "):
            names.append(p.astring().decode("ascii", "replace"))
        p.expect(b")")
        fields = tuple(n.upper() for n in names)
    p.expect(b"]")
    partial = None
    if p.take(b"<"):
        origin = p.number()
        p.expect(b".")
        count = p.number(nz=True)
        p.expect(b">")
        partial = (origin, count)
    label = section + ("." if section and rest else "") + rest
    if fields:
        label += " (" + " ".join(_field_label(f) for f in fields) + ")"
    return BodyItem(f"BODY[{label}]", section, rest, fields, partial, peek)


def _field_label(name: str) -> str:
    if name and all(ord(c) in ASTRING_CHARS for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


RFC822 = BodyItem("RFC822", "", "", peek=False)
RFC822_HEADER = BodyItem("RFC822.HEADER", "", "HEADER")
RFC822_TEXT = BodyItem("RFC822.TEXT", "", "TEXT", peek=False)


def byte_range(item: BodyItem, size: int, parsed: ParsedMessage | None) -> tuple[int, int] | None:
    """The ``[start, end)`` to read for ``item``, before HEADER.FIELDS filtering and partials."""
    if item.whole:
        rng: tuple[int, int] | None = (0, size)
    elif parsed is None:
        return None
    else:
        rng = section_range(parsed, item.section, item.spec)
    if rng is None:
        return None
    start, end = rng
    if item.partial is not None and not item.fields:
        origin, count = item.partial
        start, end = min(start + origin, end), min(start + origin + count, end)
    return start, end


def finish(item: BodyItem, data: bytes) -> bytes:
    """Apply HEADER.FIELDS filtering, then the partial window, to the octets read."""
    if item.fields:
        data = filter_header_fields(data, list(item.fields), item.spec.endswith(".NOT"))
        if item.partial is not None:
            origin, count = item.partial
            data = data[origin:origin + count]
    return data


def _label(item: BodyItem) -> bytes:
    label = item.label
    if item.partial is not None:
        label += f"<{item.partial[0]}>"
    return label.encode("utf-8")


def render(item: BodyItem, data: bytes | None) -> bytes:
    """``BODY[...]<origin> {n}\\r\\n<octets>`` (NIL when the section does not exist)."""
    if data is None:
        return _label(item) + b" NIL"
    return literal_head(item, len(data)) + no_nul(data)


def no_nul(data: bytes) -> bytes:
    """A literal may not carry NUL (RFC 3501 §4.3, ``CHAR8``): as Dovecot does, NUL goes out as
    0x80 in BODY[] (same length). BINARY[] sends the octets unchanged as ``literal8``."""
    return data.replace(b"\x00", b"\x80") if b"\x00" in data else data


def literal_head(item: BodyItem, size: int) -> bytes:
    """The response up to the literal's octets, for data that is streamed after it."""
    return b"%s {%d}\r\n" % (_label(item), size)


async def read_ranges(conn: Any, wanted: list[tuple[str, int, int, int]]) -> list[bytes]:
    """Read ``(blob_key, message size, start, end)`` ranges: one thread job for the lot, small
    messages from the store's cache of recent bodies (``MailStore.read_ranges``)."""
    return list(await conn.store.read_ranges(wanted))
