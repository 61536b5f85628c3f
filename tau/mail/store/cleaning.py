"""Text bound for the database: no NUL characters, no lone surrogates (PostgreSQL's TEXT and the
UTF-8 codecs refuse them; malformed mail must still be stored)."""

from __future__ import annotations


def clean(text: str | None) -> str:
    """``text`` safe for any TEXT column: no NUL, valid UTF-8."""
    if not text:
        return ""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
