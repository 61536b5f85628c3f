"""vCard 3.0 (RFC 2426) and 4.0 (RFC 6350) as TauContacts needs them: check, index, build.

The stored bytes are the client's: this module only reads them. ``parse`` checks that a body is
one vCard of a supported version (RFC 6352 §5.1) and returns what the index holds (FN, EMAIL,
TEL, NICKNAME, UID, case-folded) plus the fields the REST view shows. It is a content-line
reader (unfolding, groups, parameters, escapes), not a full object model, so a PUT costs one
pass over the text. ``build`` and ``patch`` write the REST view back as vCard lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

MAX_RESOURCE_SIZE = 2 * 1024 * 1024   # inline photos make cards big; RFC 6352 §6.2.3
VERSIONS = ("3.0", "4.0")
INDEXED = ("FN", "EMAIL", "TEL", "NICKNAME", "UID")


class InvalidCard(Exception):
    """A CardDAV precondition (RFC 6352 §6.3.2.1) the body fails."""

    def __init__(self, condition: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.condition, self.message, self.status = condition, message, status


@dataclass
class Line:
    name: str                       # upper case, group removed
    params: dict[str, list[str]]    # upper-case keys, values as written
    value: str                      # escaped, as in the text

    def text(self) -> str:
        return unescape(self.value)

    def types(self) -> list[str]:
        out = [t.lower() for v in self.params.get("TYPE", []) for t in v.split(",") if t]
        return out + [k.lower() for k, v in self.params.items() if not v and k not in ("PREF",)]


@dataclass
class Card:
    version: str
    uid: str
    fn: str
    lines: list[Line]
    index: list[tuple[str, str]] = field(default_factory=list)   # (prop, case-folded value)

    def all(self, name: str) -> list[Line]:
        return [line for line in self.lines if line.name == name]

    def first(self, name: str) -> str:
        found = self.all(name)
        return found[0].text() if found else ""


def unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace(",", "\\,").replace(";", "\\;")


def _split_params(head: str) -> tuple[str, dict[str, list[str]]]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in head:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    name = parts[0].rsplit(".", 1)[-1].upper()
    params: dict[str, list[str]] = {}
    for p in parts[1:]:
        key, eq, val = p.partition("=")
        params.setdefault(key.strip().upper(), []).extend([val.strip('"')] if eq else [])
    return name, params


def content_lines(text: str) -> list[Line]:
    """Unfolded content lines (RFC 6350 §3.2); a line without a colon is refused."""
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    unfolded: list[str] = []
    for line in raw:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += line[1:]
        elif line.strip():
            unfolded.append(line)
    out = []
    for line in unfolded:
        quoted, split = False, -1
        for i, ch in enumerate(line):
            if ch == '"':
                quoted = not quoted
            elif ch == ":" and not quoted:
                split = i
                break
        if split <= 0:
            raise InvalidCard("valid-address-data", f"not a vCard content line: {line[:60]!r}")
        name, params = _split_params(line[:split])
        out.append(Line(name, params, line[split + 1:]))
    return out


def parse(data: bytes | str, fallback_uid: str = "") -> Card:
    """One vCard 3.0 or 4.0; raises InvalidCard with the RFC 6352 condition it fails."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCard("valid-address-data", "a vCard is UTF-8 text")
    if "\x00" in data:
        raise InvalidCard("valid-address-data", "NUL in a vCard")
    lines = content_lines(data)
    if not lines or lines[0].name != "BEGIN" or lines[0].value.upper() != "VCARD" or \
            lines[-1].name != "END" or lines[-1].value.upper() != "VCARD":
        raise InvalidCard("valid-address-data", "the body is not one BEGIN:VCARD ... END:VCARD")
    inner = lines[1:-1]
    if any(line.name == "BEGIN" and line.value.upper() == "VCARD" for line in inner):
        raise InvalidCard("valid-address-data", "one vCard per address object resource (RFC 6352 §5.1)")
    versions = [line.value.strip() for line in inner if line.name == "VERSION"]
    if len(versions) != 1 or versions[0] not in VERSIONS:
        raise InvalidCard("supported-address-data", "vCard VERSION must be 3.0 or 4.0")
    card = Card(versions[0], "", "", inner)
    card.uid = (card.first("UID").strip() or fallback_uid)[:512]
    card.fn = card.first("FN").strip()
    for line in inner:
        if line.name in ("FN", "EMAIL", "TEL", "UID"):
            card.index.append((line.name, line.text().strip().lower()[:512]))
        elif line.name == "NICKNAME":
            card.index += [("NICKNAME", n.strip().lower()[:512]) for n in _split_list(line.value) if n.strip()]
    if not any(p == "UID" for p, _ in card.index) and card.uid:
        card.index.append(("UID", card.uid.lower()))
    return card


def _split_list(value: str) -> list[str]:
    """A comma-separated value with ``\\,`` escapes (NICKNAME, CATEGORIES)."""
    out, cur, i = [], [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            cur.append(value[i:i + 2])
            i += 2
            continue
        if value[i] == ",":
            out.append(unescape("".join(cur)))
            cur = []
        else:
            cur.append(value[i])
        i += 1
    out.append(unescape("".join(cur)))
    return out


def etag_of(data: str) -> str:
    return '"' + hashlib.sha256(data.encode("utf-8")).hexdigest()[:32] + '"'


def fold(line: str) -> str:
    """RFC 6350 §3.2: lines over 75 octets folded (never inside a UTF-8 sequence)."""
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > 75:
            out.append("".join(cur))
            cur, size = [" "], 1
        cur.append(ch)
        size += n
    out.append("".join(cur))
    return "\r\n".join(out)


def field_lines(fields: dict[str, object]) -> list[str]:
    """vCard 3.0 lines for the REST fields present in ``fields`` (name, emails, phones, org, note)."""
    out: list[str] = []
    if "name" in fields:
        name = str(fields["name"] or "")
        out += [f"FN:{escape(name)}", f"N:{escape(name)};;;;"]
    for key, prop in (("emails", "EMAIL"), ("phones", "TEL")):
        for item in fields.get(key) or []:  # type: ignore[attr-defined]
            value, kind = (item.get("value", ""), item.get("type")) if isinstance(item, dict) else (item, None)
            param = f";TYPE={escape(str(kind)).upper()}" if kind else ""
            out.append(f"{prop}{param}:{escape(str(value))}")
    if fields.get("org"):
        out.append(f"ORG:{escape(str(fields['org']))}")
    if fields.get("note"):
        out.append(f"NOTE:{escape(str(fields['note']))}")
    return out


def build(uid: str, fields: dict[str, object]) -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", "PRODID:-//tau//contacts//EN", f"UID:{escape(uid)}",
             *field_lines({"name": "", **fields}), "END:VCARD"]
    return "\r\n".join(fold(line) for line in lines) + "\r\n"


_REPLACES = {"name": ("FN", "N"), "emails": ("EMAIL",), "phones": ("TEL",), "org": ("ORG",), "note": ("NOTE",)}


def patch(text: str, fields: dict[str, object]) -> str:
    """The stored vCard with the REST fields in ``fields`` replaced; every other line kept as is."""
    drop = {prop for key in fields for prop in _REPLACES.get(key, ())}
    physical = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    skipping = False
    for line in physical:
        if line[:1] in (" ", "\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(":", 1)[0].split(";", 1)[0].rsplit(".", 1)[-1].upper()
        skipping = name in drop
        if not skipping and line:
            kept.append(line)
    end = max(i for i, line in enumerate(kept) if line.upper().startswith("END:VCARD"))
    new = [fold(line) for line in field_lines(fields)]
    return "\r\n".join(kept[:end] + new + kept[end:]) + "\r\n"


def view(card: Card) -> dict[str, object]:
    """The REST fields of a parsed card."""
    def items(name: str) -> list[dict[str, str | None]]:
        out = []
        for line in card.all(name):
            types = [t for t in line.types() if t not in ("internet", "pref", "voice")]
            out.append({"type": types[0] if types else None, "value": line.text().removeprefix("tel:")})
        return out

    return {"name": card.fn, "emails": items("EMAIL"), "phones": items("TEL"),
            "org": card.first("ORG").replace(";", " ").strip() if card.all("ORG") else None,
            "note": card.first("NOTE") or None, "photo": bool(card.all("PHOTO"))}
