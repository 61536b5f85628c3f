"""BODY[section] byte ranges and header subsetting (RFC 3501 section 6.4.5).

``section_range`` maps a section number plus specifier to a byte range of
the raw message; for ``HEADER.FIELDS`` / ``HEADER.FIELDS.NOT`` it returns
the range of the header to filter, which the caller passes through
:func:`filter_header_fields`.
"""

from __future__ import annotations

from .parse import ParsedMessage, part_by_section


def section_range(
    parsed: ParsedMessage, section: str, spec: str
) -> tuple[int, int] | None:
    """Byte range ``(start, end)`` of BODY[``section``.``spec``], or None if
    the section does not exist or the specifier does not apply to it.

    ``spec`` is "", "HEADER", "TEXT", "MIME", "HEADER.FIELDS ..." or
    "HEADER.FIELDS.NOT ..." (case-insensitive; any field list is ignored).
    HEADER/TEXT apply to the whole message and to message/rfc822 parts;
    MIME only to numbered parts.
    """
    section = section.strip().rstrip(".")
    key = spec.strip().upper()
    if key.startswith("HEADER.FIELDS"):
        key = "HEADER"
    part = part_by_section(parsed, section)
    if part is None:
        return None
    if key == "":
        if section == "":
            return (0, parsed.size)
        return (part.body_start, part.end)
    if key == "MIME":
        if section == "":
            return None
        return (part.header_start, part.body_start)
    if key not in ("HEADER", "TEXT"):
        return None
    if section == "":
        hdr_start, body_start, end = part.header_start, part.body_start, part.end
    elif part.is_message_rfc822 and part.inner_body_start >= 0:
        hdr_start, body_start, end = part.body_start, part.inner_body_start, part.end
    else:
        return None
    if key == "HEADER":
        return (hdr_start, body_start)
    return (body_start, end)


def _is_blank(line: bytes) -> bool:
    return line in (b"\r\n", b"\n", b"\r")


def filter_header_fields(header_bytes: bytes, names: list[str], exclude: bool) -> bytes:
    """Keep (or, with ``exclude``, drop) the fields named in ``names``,
    matched case-insensitively (RFC 3501 6.4.5 HEADER.FIELDS[.NOT]).

    Continuation lines stay with their field.  The delimiting blank line is
    kept if ``header_bytes`` has one.  Lines that are not fields are only
    kept by the ``.NOT`` form.
    """
    wanted = {n.strip().lower().encode("latin-1", "replace") for n in names}
    out: list[bytes] = []
    keep = False
    pos = 0
    n = len(header_bytes)
    while pos < n:
        nl = header_bytes.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        line = header_bytes[pos:end]
        pos = end
        if _is_blank(line):
            out.append(line)
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        colon = line.find(b":")
        if colon <= 0:
            keep = exclude
        else:
            name = line[:colon].rstrip(b" \t").lower()
            keep = (name in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(out)
