"""The mail store's contract: what SMTP, IMAP and the REST API may ask of it.

Metadata (mailboxes, UIDs, flags, MODSEQ, parsed fields) lives in the database; raw RFC 5322
bytes live in the blob store (content-addressed, encrypted), referenced by ``blob_key``.
Everything a protocol needs per message (ENVELOPE, BODYSTRUCTURE, part offsets) is computed once
at delivery by ``tau.mail.mime.parse_message`` and stored, so FETCH never re-parses.

Every mutating call commits in one transaction and, after commit, publishes a
``mailbox.changed`` event on the registry's bus:
``{"user": address, "mailbox_id": int, "mailbox": name, "kind": "append"|"expunge"|"flags"|"mailboxes",
   "uids": [...], "modseq": int}`` — IMAP IDLE and other sessions on the same mailbox listen to it.
An operation that defines keywords new to the mailbox adds ``"keywords": [...]`` (kind
"keywords" when no message changed), so sessions announce them in ``* FLAGS`` (keywords.py).

Mailbox names are full paths with "/" as hierarchy delimiter; "INBOX" is case-insensitive and
stored as "INBOX". Names are Unicode (IMAP's modified UTF-7 is the protocol's business).
Flags are strings like "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded";
system flags are matched case-insensitively and stored in their canonical case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None), ("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
    ("Junk", "\\Junk"), ("Archive", "\\Archive"),
)
DELIMITER = "/"


class MailStoreError(Exception):
    """A refused operation. ``code`` is snake_case (for REST) and maps onto IMAP NO / SMTP codes."""

    code = "mail_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QuotaExceeded(MailStoreError):
    code = "quota_exceeded"        # SMTP 552 5.2.2, IMAP NO [OVERQUOTA]


class MailboxNotFound(MailStoreError):
    code = "mailbox_not_found"     # IMAP NO [NONEXISTENT]


class MailboxExists(MailStoreError):
    code = "mailbox_exists"        # IMAP NO [ALREADYEXISTS]


class InvalidMailboxName(MailStoreError):
    code = "invalid_mailbox_name"  # IMAP NO / BAD


class SpecialUseTaken(MailStoreError):
    code = "special_use_taken"      # IMAP NO [USEATTR] (RFC 6154 section 3)


class MailboxInUse(MailStoreError):
    code = "mailbox_in_use"        # e.g. deleting INBOX, or a special-use box


@dataclass(frozen=True)
class MailboxInfo:
    id: int
    name: str
    special_use: str | None        # "\\Sent", ... or None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    messages: int
    unseen: int
    size: int                      # bytes of all messages
    has_children: bool = False


@dataclass(frozen=True)
class MessageMeta:
    """One message row, everything FETCH needs without touching the blob."""

    uid: int
    modseq: int
    flags: tuple[str, ...]
    internal_date: int             # unix seconds
    size: int
    blob_key: str
    envelope: str                  # pre-rendered IMAP ENVELOPE
    body: str                      # pre-rendered BODY
    bodystructure: str             # pre-rendered BODYSTRUCTURE
    parsed_json: str = ""          # tau.mail.mime.to_json(...) — part offsets etc.; loaded only on request


@dataclass(frozen=True)
class Delivered:
    user: str
    mailbox: str
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class FlagChange:
    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(frozen=True)
class StoreResult:
    changed: list[FlagChange]
    #: UIDs not changed because their modseq was above UNCHANGEDSINCE (RFC 7162 §3.1.3)
    modified: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CopyResult:
    uidvalidity: int               # of the destination (COPYUID, RFC 4315)
    pairs: list[tuple[int, int]]   # (source uid, destination uid)


@dataclass(frozen=True)
class Search:
    """A compiled SEARCH (RFC 3501 §6.4.4): a tree of ("and"|"or"|"not", ...) or leaves.

    Leaves: ("all",), ("uid", [(lo, hi), ...]) with hi None for "*", ("flag", "\\Seen", present: bool),
    ("header", name, substring), ("from"|"to"|"cc"|"bcc"|"subject", substring), ("body"|"text", substring),
    ("before"|"on"|"since", unix_day_start) on internal date, ("sentbefore"|"senton"|"sentsince", ...),
    ("larger"|"smaller", n), ("modseq", n), ("new",), ("old",) ...  Substring matches are case-insensitive.
    """

    tree: tuple


class MailStoreAPI(Protocol):
    """Implemented by ``tau.mail.store.MailStore(registry)``. All methods return awaitables."""

    # -- accounts ------------------------------------------------------------------------------
    async def ensure_defaults(self, user: str) -> None:
        """Create INBOX, Sent, Drafts, Trash, Junk, Archive (special-use) if missing. Idempotent."""

    async def usage(self, user: str) -> tuple[int, int]:
        """(bytes used, quota bytes or 0 for none)."""

    # -- delivery ------------------------------------------------------------------------------
    async def deliver(self, recipients: Sequence[str], raw: bytes | None, blob_key: str | None, size: int,
                      parsed: object, mailbox: str = "INBOX", flags: Sequence[str] = (),
                      internal_date: int | None = None) -> list[Delivered]:
        """Store one message for several local users in ONE transaction (all or nothing).

        Either ``raw`` (small, stored here) or an already-committed ``blob_key`` (large, streamed by
        the caller through ``registry.blobs.writer()``). ``parsed`` is the ParsedMessage.
        Quota is checked for every recipient: QuotaExceeded names the first over quota.
        A missing target mailbox (e.g. "Junk") falls back to INBOX.
        """

    async def append(self, user: str, mailbox: str, raw: bytes, flags: Sequence[str] = (),
                     internal_date: int | None = None) -> Delivered:
        """IMAP APPEND / REST save: parse, store the blob, add to ``mailbox`` (must exist)."""

    # -- mailboxes -----------------------------------------------------------------------------
    async def list_mailboxes(self, user: str) -> list[MailboxInfo]: ...

    async def get_mailbox(self, user: str, name: str) -> MailboxInfo | None: ...

    async def create_mailbox(self, user: str, name: str) -> MailboxInfo:
        """Creates missing parents too (RFC 3501 §6.3.3)."""

    async def delete_mailbox(self, user: str, name: str) -> None:
        """Expunges its messages; refuses INBOX; children stay (RFC 3501 §6.3.4)."""

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        """Renames children too; RENAME INBOX moves its messages to a new box (RFC 3501 §6.3.5)."""

    async def subscribe(self, user: str, name: str, subscribed: bool) -> None: ...

    async def deleted_counts(self, mailbox_ids: Sequence[int]) -> dict[int, int]:
        """Messages flagged \\Deleted per mailbox, absent when none (STATUS DELETED)."""

    async def lost_subscriptions(self, user: str) -> list[str]:
        """Names still subscribed after their mailbox was deleted (RFC 3501 §6.3.9)."""

    # -- messages ------------------------------------------------------------------------------
    async def uids(self, mailbox_id: int) -> list[int]:
        """Every UID in the mailbox, ascending (an IMAP session's sequence-number map)."""

    async def fetch(self, mailbox_id: int, uids: Sequence[int], with_parsed: bool = False) -> list[MessageMeta]:
        """Metadata for these UIDs, ascending; one query (no N+1), chunked for big sets."""

    async def changed_since(self, mailbox_id: int, modseq: int) -> list[FlagChange]:
        """Messages whose MODSEQ is above ``modseq`` (CONDSTORE FETCH CHANGEDSINCE, IDLE updates)."""

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str, flags: Sequence[str],
                          unchanged_since: int | None = None) -> StoreResult:
        """``mode`` is "+", "-" or "=" (RFC 3501 §6.4.6). Bumps MODSEQ of changed messages only."""

    async def copy(self, mailbox_id: int, uids: Sequence[int], dest_user: str, dest_mailbox: str) -> CopyResult:
        """Copies share the blob (no second copy of the bytes). Checks quota."""

    async def move(self, mailbox_id: int, uids: Sequence[int], dest_user: str, dest_mailbox: str) -> CopyResult:
        """RFC 6851: copy + expunge in one transaction."""

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove \\Deleted messages (only those in ``uids`` when given, UID EXPUNGE). Returns UIDs removed.
        Quota and counters drop at once; the messages stay readable for IMAP sessions that still show
        them until purged a grace period later (``tau.mail.store.purge``), then blobs no longer
        referenced are deleted."""

    async def search(self, mailbox_id: int, query: Search) -> list[int]:
        """UIDs matching, ascending; evaluated in SQL over the stored fields, no blob reads."""

    async def read(self, blob_key: str, start: int = 0, end: int | None = None) -> bytes:
        """Raw message bytes (a range); for big ranges use ``registry.blobs.open`` to stream."""


class InvalidSearch(MailStoreError):
    """A search key the store does not understand or with a malformed argument (IMAP BAD)."""

    code = "invalid_search"
