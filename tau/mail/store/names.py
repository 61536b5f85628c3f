"""Mailbox names and flags: validation and canonical forms (pure functions, no I/O).

Every name or flag a client sends goes through here before it reaches SQL, so the database only
ever holds canonical values and a lookup by name can never be steered somewhere else.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from tau.mail.store.api import DELIMITER, InvalidMailboxName, MailStoreError

INBOX = "INBOX"
MAX_NAME = 200
MAX_KEYWORD = 100

#: RFC 3501 section 2.3.2 system flags, in the order they are stored.
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SYSTEM = {f.lower(): f for f in SYSTEM_FLAGS}
RECENT = "\\Recent"

# atom-specials (RFC 3501 section 9): ( ) { SP CTL % * " \ ]  — plus anything beyond US-ASCII.
_KEYWORD = re.compile(r"^[\x21\x23-\x24\x26-\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]+$")
_WILDCARDS = ("*", "%")


class InvalidFlag(MailStoreError):
    """A flag that may not be set: \\Recent (RFC 3501 section 2.3.2), an unknown system flag,
    or a keyword that is not an atom."""

    code = "invalid_flag"


def _bad_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cs", "Zl", "Zp") or ch in _WILDCARDS or ch in "\u202a\u202b\u202c\u202d\u202e"


def normalize_mailbox_name(name: str) -> str:
    """The canonical form of ``name``, or InvalidMailboxName.

    "INBOX" is case-insensitive (RFC 3501 section 5.1), also as the first segment of a path
    ("inbox/x" is "INBOX/x"). Refused: empty names and segments, a leading or trailing "/",
    "." and ".." segments, segments with surrounding white space, LIST wildcards "*" and "%"
    (a name containing them could never be listed exactly), control and bidi-override
    characters, and names over 200 characters. Names are NFC-normalised so two spellings of
    the same visible name are one mailbox.
    """
    if not isinstance(name, str) or not name:
        raise InvalidMailboxName("mailbox name is empty")
    name = unicodedata.normalize("NFC", name)
    if len(name) > MAX_NAME:
        raise InvalidMailboxName(f"mailbox name is longer than {MAX_NAME} characters")
    if any(_bad_char(ch) for ch in name):
        raise InvalidMailboxName("mailbox name contains a wildcard or control character")
    if name.startswith(DELIMITER) or name.endswith(DELIMITER):
        raise InvalidMailboxName(f"mailbox name may not begin or end with {DELIMITER!r}")
    segments = name.split(DELIMITER)
    for seg in segments:
        if not seg:
            raise InvalidMailboxName("mailbox name has an empty hierarchy level")
        if seg in (".", ".."):
            raise InvalidMailboxName(f"mailbox name may not contain a {seg!r} level")
        if seg != seg.strip():
            raise InvalidMailboxName("mailbox name levels may not begin or end with white space")
    if segments[0].upper() == INBOX:
        segments[0] = INBOX
    return DELIMITER.join(segments)


def parents(name: str) -> list[str]:
    """The ancestors of a canonical name, outermost first ("a/b/c" → ["a", "a/b"])."""
    segments = name.split(DELIMITER)
    return [DELIMITER.join(segments[:i]) for i in range(1, len(segments))]


def canonical_flag(flag: str) -> str:
    """One flag in canonical form: system flags case-folded onto their RFC spelling."""
    if not isinstance(flag, str) or not flag:
        raise InvalidFlag("empty flag")
    if flag.startswith("\\"):
        if flag.lower() == RECENT.lower():
            raise InvalidFlag("\\Recent is set by the server only (RFC 3501 section 2.3.2)")
        system = _SYSTEM.get(flag.lower())
        if system is None:
            raise InvalidFlag(f"unknown system flag {flag}")
        return system
    if len(flag) > MAX_KEYWORD or not _KEYWORD.match(flag):
        raise InvalidFlag(f"invalid keyword {flag!r}")
    return flag


def canonical_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """A canonical, duplicate-free flag tuple: system flags first in a fixed order, then keywords
    sorted; keywords compare case-insensitively (the first spelling wins)."""
    system: set[str] = set()
    keywords: dict[str, str] = {}
    for flag in flags:
        f = canonical_flag(flag)
        if f.startswith("\\"):
            system.add(f)
        else:
            keywords.setdefault(f.lower(), f)
    return tuple(f for f in SYSTEM_FLAGS if f in system) + tuple(keywords[k] for k in sorted(keywords))


def apply_flags(current: tuple[str, ...], mode: str, flags: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 3501 section 6.4.6: "+" adds, "-" removes, "=" replaces. Inputs are canonical."""
    if mode == "=":
        return flags
    if mode == "+":
        return canonical_flags(current + flags)
    if mode == "-":
        drop = {f.lower() for f in flags}
        return tuple(f for f in current if f.lower() not in drop)
    raise MailStoreError(f"unknown STORE mode {mode!r}")


def flags_text(flags: tuple[str, ...]) -> str:
    return " ".join(flags)


def split_flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()
