"""``MailStore(registry)``: the async MailStoreAPI over ``registry.db`` and ``registry.blobs``.

Each method is one named transaction (``mail_*`` in the database metrics). Parsing and
casefolding happen in a worker thread before the transaction; raw bytes are written (and
fsynced) to the blob store before the row that references them commits, so a ``Delivered``
result means both are durable. Methods that take a ``mailbox_id`` trust the caller to have got
it from ``get_mailbox(user, ...)`` for its own user; passing ``user=`` makes the store verify
ownership too (MailboxNotFound otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.blobs import validate_key
from tau.mail.store import (
    atrest_mail,
    blobrefs,
    deleted,
    mailboxes,
    messages,
    moving,
    multiappend,
    purge,
    queue,
    quota,
    results,
    sorting,
    status_counts,
    subscriptions,
    tombstones,
)
from tau.mail.store import search as searching
from tau.mail.store.api import (
    CopyResult,
    Delivered,
    FlagChange,
    MailboxInfo,
    MessageMeta,
    Search,
    StoreResult,
)
from tau.mail.store.body_cache import BodyReader, Wanted
from tau.mail.store.context import StoreContext
from tau.mail.store.fields import MessageFields, prepare
from tau.mail.store.names import INBOX, canonical_flags, normalize_mailbox_name
from tau.mail.store.opened import OpenedMeta
from tau.mail.store.session_flags import SessionFlagsMixin

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()


class MailStore(SessionFlagsMixin):
    """Implements ``tau.mail.store.api.MailStoreAPI`` (plus the extensions documented below)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._ctx: StoreContext | None = None
        self._sorted = sorting.ResultCache()
        self._opened = OpenedMeta()  # ENVELOPE/BODY/BODYSTRUCTURE once opened (header syncs repeat)
        self._bodies: BodyReader | None = None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def ctx(self) -> StoreContext:
        if self._ctx is None:
            reg = self._registry
            self._ctx = StoreContext(blobs=reg.blobs.sync, bus=reg.bus,
                                     default_quota=int(reg.config.limits.quota_bytes or 0),
                                     collect=self._collect, keyring=reg.keyring)
        return self._ctx

    def _run(self, name: str, fn: Any, *args: Any, readonly: bool = False, **kwargs: Any) -> Any:
        return self._registry.db.run(name, fn, *args, readonly=readonly, **kwargs)

    def _grouped(self, name: str, fn: Any, *args: Any) -> Any:
        """A write answered to the client once committed: shares a commit with concurrent ones."""
        return self._registry.db.run_grouped(name, fn, *args)

    def _collect(self, keys: list[str]) -> Any:
        """After-commit garbage collection of blobs whose last reference went (their cached
        bodies go at once)."""
        if self._bodies is not None:
            self._bodies.cache.discard(keys)
        d = self._run("mail_collect_blobs", blobrefs.collect, self.ctx, keys)
        d.addErrback(lambda f: log.failure("collecting {n} mail blob(s) failed", f, n=len(keys)))
        return d

    async def _fields(self, parsed: Any, raw: bytes | None) -> MessageFields:
        return await self._registry.run_in_thread(prepare, parsed, raw)

    async def _fields_for_blob(self, key: str, parsed: Any) -> MessageFields:
        """Fields of a message already in the blob store (parsed from the blob when not given)."""
        if parsed is not None:
            return await self._fields(parsed, None)
        return await self._fields(None, await self._registry.blobs.read(key))

    async def _put(self, raw: bytes) -> tuple[str, int]:
        info = await self._registry.blobs.put(raw)
        return info.key, info.size

    async def _prepare_and_put(self, parsed: Any, raw: bytes) -> tuple[MessageFields, str, int]:
        """Parse and write the blob at the same time (two worker threads): the parse costs CPU,
        the blob write mostly waits for fsync, so overlapping them shortens each delivery."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError("raw must be bytes")
        raw = bytes(raw)
        fields_d = defer.ensureDeferred(self._fields(parsed, raw))
        put_d = defer.ensureDeferred(self._put(raw))
        results = await defer.DeferredList([fields_d, put_d], consumeErrors=True)
        (fields_ok, fields), (put_ok, stored) = results
        if not put_ok:
            stored.raiseException()
        if not fields_ok:
            self._collect([stored[0]])
            fields.raiseException()
        return fields, stored[0], stored[1]

    # -- accounts ----------------------------------------------------------------------------

    async def ensure_defaults(self, user: str) -> None:
        """Create INBOX, Sent, Drafts, Trash, Junk, Archive (RFC 6154 special-use); idempotent."""
        await self._run("mail_ensure_defaults", mailboxes.ensure_defaults, self.ctx, user)

    async def usage(self, user: str) -> tuple[int, int]:
        """(bytes used, quota bytes or 0 for none)."""
        return await self._run("mail_usage", quota.usage, user, self.ctx.default_quota, readonly=True)

    async def usage_detail(self, user: str) -> dict[str, int]:
        """Extension: {"bytes", "messages", "quota"} (IMAP GETQUOTAROOT, REST)."""
        return await self._run("mail_usage", quota.usage_detail, user, self.ctx.default_quota, readonly=True)

    # -- delivery ----------------------------------------------------------------------------

    async def deliver(self, recipients: Sequence[str], raw: bytes | None, blob_key: str | None, size: int,
                      parsed: object, mailbox: str = "INBOX", flags: Sequence[str] = (),
                      internal_date: int | None = None) -> list[Delivered]:
        """One message for several local users in one transaction (see api.py). ``parsed`` may be
        None: it is then parsed from ``raw`` (or from the blob)."""
        recipients = list(recipients)
        if not recipients:
            return []
        canonical_flags(flags)  # refuse bad flags before any bytes are written
        if raw is not None:
            fields, key, size = await self._prepare_and_put(parsed, raw)
        else:
            if blob_key is None:
                raise ValueError("deliver() needs raw bytes or a blob_key")
            key = validate_key(blob_key)
            fields = await self._fields_for_blob(key, parsed)
        try:
            return await self._run("mail_deliver", messages.deliver, self.ctx, recipients, key, int(size),
                                   fields, mailbox, tuple(flags), internal_date, raw)
        except BaseException:
            if raw is not None:  # the blob we wrote may now be referenced by nothing
                self._collect([key])
            raise

    async def append(self, user: str, mailbox: str, raw: bytes, flags: Sequence[str] = (),
                     internal_date: int | None = None) -> Delivered:
        """IMAP APPEND / REST save into an existing mailbox (MailboxNotFound → NO [TRYCREATE])."""
        canonical_flags(flags)  # refuse bad flags before any bytes are written
        fields, key, size = await self._prepare_and_put(None, raw)
        try:
            return await self._grouped("mail_append", messages.append, self.ctx, user, mailbox, key, size, fields,
                                   tuple(flags), internal_date, raw)
        except BaseException:
            self._collect([key])
            raise

    async def append_many(self, user: str, mailbox: str,
                          items: Sequence[tuple[bytes, Sequence[str], int | None]]) -> list[Delivered]:
        """Extension: MULTIAPPEND (RFC 3502), ``(raw, flags, internal_date)`` each, all or none."""
        for _, flags, _ in items:
            canonical_flags(flags)
        prepared: list[multiappend.Prepared] = []
        try:
            for raw, flags, when in items:
                fields, key, size = await self._prepare_and_put(None, raw)
                prepared.append(multiappend.Prepared(key, size, fields, tuple(flags), when, raw))
            return await self._grouped("mail_append", multiappend.append_many, self.ctx, user, mailbox, prepared)
        except BaseException:
            if prepared:
                self._collect([p.key for p in prepared])
            raise

    async def append_blob(self, user: str, mailbox: str, blob_key: str, size: int, parsed: object = None,
                          flags: Sequence[str] = (), internal_date: int | None = None) -> Delivered:
        """Extension: APPEND of a message the caller streamed through ``registry.blobs.writer()``
        (big literals). The caller still owns the blob if this fails (see discard_blob)."""
        key = validate_key(blob_key)
        fields = await self._fields_for_blob(key, parsed)
        return await self._grouped("mail_append", messages.append, self.ctx, user, mailbox, key, int(size), fields,
                               tuple(flags), internal_date, None)

    async def discard_blob(self, blob_key: str) -> None:
        """Extension: delete a blob the caller wrote but could not deliver — only if nothing
        references it (safe to call for content that is also stored elsewhere)."""
        await self._collect([validate_key(blob_key)])

    async def sweep_blobs(self, limit: int = 1000) -> int:
        """Extension: collect blobs left unreferenced by a failed after-commit collection."""
        keys = await self._run("mail_unreferenced_blobs", blobrefs.unreferenced, limit, readonly=True)
        if keys:
            await self._collect(keys)
        return len(keys)

    # -- mailboxes ---------------------------------------------------------------------------

    async def list_mailboxes(self, user: str) -> list[MailboxInfo]:
        return await self._run("mail_list_mailboxes", mailboxes.list_mailboxes, self.ctx, user, readonly=True)

    async def deleted_counts(self, mailbox_ids: Sequence[int]) -> dict[int, int]:
        """Messages flagged \\Deleted per mailbox (STATUS DELETED)."""
        return await self._run("mail_deleted_counts", status_counts.deleted_counts, mailbox_ids, readonly=True)

    async def lost_subscriptions(self, user: str) -> list[str]:
        """Subscribed names whose mailbox was deleted (``subscriptions.py``)."""
        return await self._run("mail_lost_subscriptions", subscriptions.lost, self.ctx, user, readonly=True)

    async def get_mailbox(self, user: str, name: str) -> MailboxInfo | None:
        """``user``'s mailbox ``name`` or None (invalid names included). INBOX is created with the
        other defaults on first look, so a new account can SELECT it at once."""
        info = await self._run("mail_get_mailbox", mailboxes.get_mailbox, self.ctx, user, name, readonly=True)
        if info is None and _is_inbox(name):
            try:
                await self.ensure_defaults(user)
            except quota.UnknownUser:
                return None
            info = await self._run("mail_get_mailbox", mailboxes.get_mailbox, self.ctx, user, name, readonly=True)
        return info

    async def get_mailbox_by_id(self, user: str, mailbox_id: int) -> MailboxInfo | None:
        """Extension: the mailbox with this id if ``user`` owns it, else None."""
        return await self._run("mail_get_mailbox", mailboxes.get_mailbox_by_id, self.ctx, user, mailbox_id,
                               readonly=True)

    async def owner(self, mailbox_id: int) -> str | None:
        """Extension: the address that owns ``mailbox_id`` (None if there is no such mailbox)."""
        return await self._run("mail_mailbox_owner", mailboxes.owner, mailbox_id, readonly=True)

    async def create_mailbox(self, user: str, name: str, special_use: str | None = None) -> MailboxInfo:
        return await self._run("mail_create_mailbox", mailboxes.create_mailbox, self.ctx, user, name,
                               special_use)

    async def delete_mailbox(self, user: str, name: str) -> None:
        await self._run("mail_delete_mailbox", mailboxes.delete_mailbox, self.ctx, user, name)

    async def rename_mailbox(self, user: str, old: str, new: str) -> None:
        await self._run("mail_rename_mailbox", mailboxes.rename_mailbox, self.ctx, user, old, new)

    async def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        await self._run("mail_subscribe", mailboxes.subscribe, self.ctx, user, name, subscribed)

    # -- messages ----------------------------------------------------------------------------

    async def uids(self, mailbox_id: int, *, user: str | None = None) -> list[int]:
        return await self._run("mail_uids", messages.uids, mailbox_id, user, readonly=True)

    async def fetch(self, mailbox_id: int, uids: Sequence[int], with_parsed: bool = False, *,
                    user: str | None = None) -> list[MessageMeta]:
        """Metadata for ``uids``, ascending. ``parsed_json`` (with_parsed) is ``to_json`` of the
        ParsedMessage without ``text_for_search`` (kept in its own table for SEARCH)."""
        return await self._run("mail_fetch", messages.fetch, self._registry.keyring, mailbox_id, list(uids),
                               with_parsed, user, self._opened, readonly=True)

    async def flags_of(self, mailbox_id: int, uids: Sequence[int], *, user: str | None = None) -> list[FlagChange]:
        """Extension: flags and MODSEQ of live ``uids``, ascending, without the message rows."""
        return await self._run("mail_flags_of", messages.flags_of, mailbox_id, list(uids), user, readonly=True)

    async def changed_since(self, mailbox_id: int, modseq: int, *, user: str | None = None) -> list[FlagChange]:
        return await self._run("mail_changed_since", messages.changed_since, mailbox_id, modseq, user,
                               readonly=True)

    async def expunged_since(self, mailbox_id: int, modseq: int, *, user: str | None = None) -> list[int]:
        """Extension: UIDs expunged after ``modseq`` (QRESYNC VANISHED)."""
        return await self._run("mail_expunged_since", messages.expunged_since, mailbox_id, modseq, user,
                               readonly=True)

    async def vanished_since(self, mailbox_id: int, modseq: int, *, user: str | None = None) -> tuple[bool, list[int]]:
        """Extension: ``(exact, uids)`` expunged after ``modseq`` (QRESYNC; see ``tombstones``)."""
        return await self._run("mail_vanished_since", tombstones.vanished_since, mailbox_id, modseq, user,
                               readonly=True)

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: str, flags: Sequence[str],
                          unchanged_since: int | None = None, *, user: str | None = None) -> StoreResult:
        return await self._run("mail_store_flags", messages.store_flags, self.ctx, mailbox_id, list(uids), mode,
                               tuple(flags), unchanged_since, user)

    async def copy(self, mailbox_id: int, uids: Sequence[int], dest_user: str, dest_mailbox: str, *,
                   user: str | None = None, strict: bool = False) -> CopyResult:
        """``strict`` (extension, IMAP): copy expunged messages not purged yet too, or raise
        ExpungeIssued copying nothing (moving.copy)."""
        return await self._run("mail_copy", moving.copy, self.ctx, mailbox_id, list(uids), dest_user,
                               dest_mailbox, user, strict)

    async def move(self, mailbox_id: int, uids: Sequence[int], dest_user: str, dest_mailbox: str, *,
                   user: str | None = None, strict: bool = False) -> CopyResult:
        """``strict`` (extension, IMAP): ExpungeIssued, moving nothing, unless every UID is live."""
        return await self._run("mail_move", moving.move, self.ctx, mailbox_id, list(uids), dest_user,
                               dest_mailbox, user, strict)

    async def fetch_expunged(self, mailbox_id: int, uids: Sequence[int], with_parsed: bool = False, *,
                             user: str | None = None) -> list[MessageMeta]:
        """Extension: FETCH data of expunged messages among ``uids`` not purged yet (an IMAP
        session's view may still show them; see tau.mail.store.purge)."""
        return await self._run("mail_fetch_expunged", purge.fetch_retired, self._registry.keyring, mailbox_id,
                               list(uids), with_parsed, user, readonly=True)

    async def purge_expunged(self, limit: int = 1000, grace: int = purge.GRACE) -> int:
        """Extension: drop expunged messages older than ``grace`` seconds for good (their blobs
        are collected when nothing else uses them); returns how many went."""
        return await self._run("mail_purge_expunged", purge.purge_due, self.ctx, limit, grace)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None, *,
                      user: str | None = None) -> list[int]:
        return await self._run("mail_expunge", moving.expunge, self.ctx, mailbox_id,
                               None if uids is None else list(uids), user)

    async def deleted_usage(self, mailbox_id: int, *, user: str | None = None) -> tuple[int, int]:
        """Extension: (messages flagged \\Deleted, their octets): STATUS DELETED, DELETED-STORAGE."""
        return await self._run("mail_deleted_usage", deleted.deleted_usage, mailbox_id, user, readonly=True)

    async def search(self, mailbox_id: int, query: Search, *, user: str | None = None) -> list[int]:
        return await self._with_keys("mail_search", searching.search, mailbox_id, query, user)

    async def sort(self, mailbox_id: int, query: Search, criteria: Sequence[tuple[str, bool]], *,
                   user: str | None = None) -> list[int]:
        """Extension: UIDs matching ``query`` in RFC 5256 SORT order (``[(key, reverse), ...]``)."""
        to_save: list[tuple[Any, ...]] = []
        found: list[int] = await self._with_keys("mail_sort", sorting.sort, mailbox_id, query, list(criteria), user,
                                                 cache=self._sorted, to_save=to_save)
        self._keep_results(to_save)
        return found

    async def thread(self, mailbox_id: int, query: Search, algorithm: str, *,
                     user: str | None = None) -> list[int]:
        """Extension: RFC 5256 THREAD of the matches (``tau.mail.store.threading.flatten`` form).
        A large result threaded afresh is stored afterwards (``_keep_results``)."""
        to_save: list[tuple[Any, ...]] = []
        flat: list[int] = await self._with_keys("mail_thread", sorting.thread, mailbox_id, query, algorithm, user,
                                                cache=self._sorted, to_save=to_save)
        self._keep_results(to_save)
        return flat

    def _keep_results(self, to_save: list[tuple[Any, ...]]) -> None:
        """Store large SORT/THREAD results worked out afresh (``results``), not waited for."""
        for item in to_save:
            d = self._run("mail_results_save", results.save, *item)
            d.addErrback(lambda f: log.failure("could not store a SORT or THREAD result", f))

    async def _with_keys(self, name: str, fn: Any, mailbox_id: int, *args: Any, **kwargs: Any) -> Any:
        """``fn`` (search, sort, thread) once the mailbox has no row left in plaintext: rows from
        before encryption at rest have neither tokens nor sealed keys until sealed, so a search
        seals its mailbox's first (what the background converter would do later anyway)."""
        keyring = self._registry.keyring
        while await self._run("mail_plain_rows", atrest_mail.has_plain, mailbox_id, readonly=True):
            await self._run("mail_seal_mailbox", atrest_mail.convert_mailbox, keyring, mailbox_id)
        return await self._run(name, fn, keyring, mailbox_id, *args, readonly=True, **kwargs)

    async def read(self, blob_key: str, start: int = 0, end: int | None = None) -> bytes:
        """Raw message bytes [start, end); stream big ranges with ``registry.blobs.open``."""
        return await self._registry.blobs.read(validate_key(blob_key), start, end)

    async def read_ranges(self, wanted: Sequence[Wanted]) -> list[bytes]:
        """Extension: ``(blob_key, message size, start, end)`` ranges of several messages in one
        thread job, small messages read whole and kept in a bounded cache (``body_cache``)."""
        if self._bodies is None:
            self._bodies = BodyReader(self._registry.blobs.sync, self._registry.run_in_thread)
        return await self._bodies.read(wanted)

    # -- outbound queue ----------------------------------------------------------------------

    async def enqueue_outbound(self, user: str | None, mail_from: str, rcpt_to: Sequence[str], blob_key: str,
                               size: int, message_id: str | None = None) -> int:
        """Queue a committed blob for remote recipients; returns the queue id."""
        return await self._run("mail_enqueue", queue.enqueue, user, mail_from, list(rcpt_to), blob_key, size,
                               message_id, self.ctx)

    async def get_outbound(self, queue_id: int) -> queue.QueuedMessage | None:
        return await self._run("mail_queue_get", queue.get, queue_id, readonly=True)

    async def finish_outbound(self, queue_id: int, status: str, error: str | None = None) -> None:
        """Mark a queue row sent/failed (releasing its blob) or back to queued/sending."""
        keys = await self._run("mail_queue_finish", queue.finish, queue_id, status, error)
        if keys:
            await self._collect(keys)


def _is_inbox(name: str) -> bool:
    try:
        return normalize_mailbox_name(name) == INBOX
    except Exception:
        return False
