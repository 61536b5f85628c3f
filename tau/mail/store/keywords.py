"""Keywords defined per mailbox (RFC 3501 section 7.2.6): the list SELECT announces in FLAGS.

Every transaction that puts flags on a message (delivery, APPEND, STORE, COPY, MOVE) calls
:func:`define` with the mailbox row already locked, so the list and the messages change
together and the count check is serialised. A mailbox holds at most :data:`MAX_KEYWORDS`
keywords (Dovecot refuses more too); past that the operation fails with TooManyKeywords (IMAP
``NO [LIMIT]``). Keywords compare case-insensitively: the first spelling used in a mailbox is
the one every message there gets, so FLAGS and FETCH never disagree on case.
"""

from __future__ import annotations

from collections.abc import Iterable

from tau.mail.store.api import MailStoreError
from tau.mail.store.mailboxes import require_owned
from tau.mail.store.names import canonical_flags
from tau.storage.database import Txn

MAX_KEYWORDS = 256


class TooManyKeywords(MailStoreError):
    """The mailbox already has :data:`MAX_KEYWORDS` keywords (IMAP ``NO [LIMIT]``)."""

    code = "keyword_limit"


def keywords(txn: Txn, mailbox_id: int, user: str | None = None) -> list[str]:
    """The keywords defined in the mailbox, in case-insensitive order."""
    require_owned(txn, mailbox_id, user)
    return [r[0] for r in txn.query("SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ? ORDER BY folded",
                                    (int(mailbox_id),))]


def define(txn: Txn, mailbox_id: int, flags: Iterable[str]) -> tuple[tuple[str, ...], list[str]]:
    """Make every keyword of ``flags`` (canonical) known in the mailbox.

    Returns the flags with keywords in the mailbox's spelling, and the keywords that are new
    (for the ``mailbox.changed`` event). No query when ``flags`` holds no keyword.
    """
    flags = tuple(flags)
    wanted = {f.lower(): f for f in flags if not f.startswith("\\")}
    if not wanted:
        return flags, []
    known = {r[0]: r[1] for r in txn.query("SELECT folded, keyword FROM mailbox_keywords WHERE mailbox_id = ?",
                                           (int(mailbox_id),))}
    new = [(folded, kw) for folded, kw in wanted.items() if folded not in known]
    if new:
        if len(known) + len(new) > MAX_KEYWORDS:
            raise TooManyKeywords(f"a mailbox can have at most {MAX_KEYWORDS} keywords")
        txn.executemany("INSERT INTO mailbox_keywords (mailbox_id, folded, keyword) VALUES (?, ?, ?)"
                        " ON CONFLICT (mailbox_id, folded) DO NOTHING",
                        [(int(mailbox_id), folded, kw) for folded, kw in new])
    spelled = canonical_flags(known.get(f.lower(), f) for f in flags)
    return spelled, [kw for _, kw in new]


def flags_in(texts: Iterable[str]) -> tuple[str, ...]:
    """The distinct flags of several stored flag lists (space-separated text)."""
    seen: dict[str, str] = {}
    for text in texts:
        for f in (text or "").split():
            seen.setdefault(f.lower(), f)
    return tuple(seen.values())
