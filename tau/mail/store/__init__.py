"""The TauMail message store: ``MailStore(registry)`` implements ``api.MailStoreAPI``.

Layout: ``api`` (the contract), ``service`` (the async class), and transaction functions
``fn(txn, ...)`` in ``mailboxes``, ``messages``, ``moving`` (copy/move/expunge), ``search``,
``quota``, ``queue`` and ``blobrefs`` (blob reference counts and garbage collection), so code
that composes its own transaction (e.g. SMTP enqueueing) can call them directly.
"""

from tau.mail.store.api import (
    DEFAULT_MAILBOXES,
    DELIMITER,
    CopyResult,
    Delivered,
    FlagChange,
    InvalidMailboxName,
    MailboxExists,
    MailboxInfo,
    MailboxInUse,
    MailboxNotFound,
    MailStoreAPI,
    MailStoreError,
    MessageMeta,
    QuotaExceeded,
    Search,
    StoreResult,
)
from tau.mail.store.blobrefs import BlobMissing
from tau.mail.store.context import TOPIC
from tau.mail.store.names import InvalidFlag, canonical_flags, normalize_mailbox_name
from tau.mail.store.purge import ExpungeIssued
from tau.mail.store.queue import QueuedMessage, enqueue
from tau.mail.store.quota import UnknownUser
from tau.mail.store.search import InvalidSearch
from tau.mail.store.service import MailStore

__all__ = [
    "DEFAULT_MAILBOXES", "DELIMITER", "TOPIC", "BlobMissing", "CopyResult", "Delivered", "ExpungeIssued",
    "FlagChange",
    "InvalidFlag", "InvalidMailboxName", "InvalidSearch", "MailStore", "MailStoreAPI", "MailStoreError",
    "MailboxExists", "MailboxInUse", "MailboxInfo", "MailboxNotFound", "MessageMeta", "QueuedMessage",
    "QuotaExceeded", "Search", "StoreResult", "UnknownUser", "canonical_flags", "enqueue",
    "normalize_mailbox_name",
]
