"""What the store keeps of a ParsedMessage: rendered IMAP items plus casefolded search columns.

Computed once per message before the transaction (no work inside the write lock). Text bound
for the database is cleaned of NUL characters and lone surrogates, which PostgreSQL's TEXT and
the UTF-8 codecs refuse; malformed mail must still be stored (issue 3, "Bad input").
"""

from __future__ import annotations

import calendar
import dataclasses
from dataclasses import dataclass
from typing import Any

from tau.mail.mime import ParsedMessage, parse_message, to_json
from tau.mail.store.cleaning import clean
from tau.mail.store.sortkeys import SortKeys, keys_of

__all__ = ["MessageFields", "clean", "fold", "prepare"]

#: header values longer than this are cut for SEARCH HEADER (the blob keeps them whole)
MAX_HEADER_VALUE = 8192
MAX_HEADERS = 500


def fold(text: str | None) -> str:
    """The search form of ``text``: cleaned, casefolded (Unicode-aware, engine-independent) and
    with white-space runs made one space, so line breaks and markup gaps do not defeat SEARCH.

    SEARCH semantics (BODY, TEXT, HEADER, SUBJECT, FROM/TO/CC/BCC): the needle is folded the same
    way and must be a substring of the folded field. So ``BODY "quarterly invoice"`` also matches
    the phrase wrapped over a line break or with two spaces, where Dovecot without FTS (an exact
    casefolded substring) does not: tau finds a superset of Dovecot's hits, never fewer. RFC 9051
    §6.4.4 leaves servers this latitude (substring matching "fuzzy" beyond case), and a wrapped
    phrase is what a user searching for it means. Single-word needles match exactly as Dovecot's.
    """
    folded = clean(text).casefold()
    squeezed = " ".join(folded.split())
    if squeezed and folded[:1].isspace():  # a needle's edges matter (" cat" is not "scat")
        squeezed = " " + squeezed
    if squeezed and folded[-1:].isspace():
        squeezed += " "
    return squeezed


@dataclass(frozen=True)
class MessageFields:
    envelope: str
    body: str
    bodystructure: str
    parsed_json: str
    subject: str
    from_text: str
    to_text: str
    cc_text: str
    bcc_text: str
    message_id: str | None
    sent_date: int | None
    sent_day: int | None
    text: str
    headers: tuple[tuple[str, str], ...]
    sort_keys: SortKeys | None = None


def _address_text(parsed: ParsedMessage, name: str, specs: tuple[str, ...]) -> str:
    """Header values (display names included) plus the bare addresses, for FROM/TO/CC/BCC."""
    values = [v for n, v in parsed.headers if n == name]
    return fold("\n".join(values + list(specs)))


def prepare(parsed: Any, raw: bytes | None = None) -> MessageFields:
    """Fields of ``parsed`` (a ParsedMessage; parsed from ``raw`` when None)."""
    if parsed is None:
        if raw is None:
            raise ValueError("need a ParsedMessage or the raw bytes")
        parsed = parse_message(raw)
    if not isinstance(parsed, ParsedMessage):
        raise TypeError(f"expected a ParsedMessage, got {type(parsed).__name__}")
    sent_date = sent_day = None
    if parsed.date is not None:
        try:
            sent_date = int(parsed.date.timestamp())
            sent_day = calendar.timegm(parsed.date.date().timetuple())
        except (OverflowError, ValueError, OSError):
            sent_date = sent_day = None
    headers = tuple((clean(n)[:200], fold(v[:MAX_HEADER_VALUE])) for n, v in parsed.headers[:MAX_HEADERS])
    # the search text has its own table; keeping it out of the JSON keeps message rows small
    slim = dataclasses.replace(parsed, text_for_search="")
    return MessageFields(
        envelope=clean(parsed.envelope),
        body=clean(parsed.body),
        bodystructure=clean(parsed.bodystructure),
        parsed_json=clean(to_json(slim)),
        subject=fold(parsed.subject),
        from_text=_address_text(parsed, "from", parsed.from_addrs),
        to_text=_address_text(parsed, "to", parsed.to_addrs),
        cc_text=_address_text(parsed, "cc", parsed.cc_addrs),
        bcc_text=_address_text(parsed, "bcc", parsed.bcc_addrs),
        message_id=clean(parsed.message_id) or None,
        sent_date=sent_date,
        sent_day=sent_day,
        text=fold(parsed.text_for_search),
        headers=headers,
        sort_keys=keys_of(parsed),
    )
