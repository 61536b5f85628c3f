"""Who may send what to whom: the MX and submission policies, and handing a message to the store.

MX (``smtp``, RFC 5321 §3.6 and §7.1): anyone may deliver to local recipients (users, aliases,
the domain's catch-all); other domains are a relay attempt (``554 5.7.1``) and unknown local
users are refused at RCPT (``550 5.1.1``) so nothing is accepted that would later bounce.
Submission (``submission``/``submissions``, RFC 6409 §4-§6): the client is authenticated, the
envelope sender and every From and Sender address must be one the user may send as (own address,
aliases, ``tau user send-as`` grants; ``553 5.7.1``), local recipients are
delivered directly and remote ones go into the outbound queue, plus a copy in the user's Sent.
Quota is checked at RCPT (``552 5.2.2``, counting the SIZE the client declared) so one full
mailbox does not fail a whole multi-recipient message at the end of data; the store checks
again, in the delivering transaction.

Rows are committed through ``batch.GroupCommit``. The per-recipient callables Twisted's
``IMessageDelivery`` hands out do not fit a store that takes one blob and delivers it to several
users in one transaction, so this is a plain class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tau.auth import accounts
from tau.auth.accounts import User
from tau.bus import events
from tau.mail import senders
from tau.mail.senders import HeaderCapture
from tau.mail.smtp.acceptlog import accepted_line
from tau.mail.smtp.batch import GroupCommit, Job
from tau.mail.smtp.dsn_params import DsnRequest
from tau.mail.smtp.syntax import Reply, domain_of, sanitize
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()


@dataclass
class Envelope:
    """One mail transaction (RFC 5321 §3.3): MAIL FROM, the accepted RCPTs and what they resolve to."""

    mail_from: str
    queue_id: str
    user: User | None = None                     # the authenticated submitter
    smtputf8: bool = False
    body: str = "7BIT"
    declared_size: int | None = None
    recipients: list[str] = field(default_factory=list)   # as accepted, for Received/logs
    local: list[str] = field(default_factory=list)        # local user addresses to deliver to
    remote: list[str] = field(default_factory=list)       # outbound (submission only)
    client_ip: str = ""                                   # for SPF/DMARC (tau.mail.trust), MX only
    helo: str = ""
    dsn: DsnRequest = field(default_factory=DsnRequest)     # RFC 3461 parameters (dsn_params.py)
    require_tls: bool = False                               # RFC 8689 REQUIRETLS
    checks: dict[str, str] = field(default_factory=dict)    # spf, dkim, dmarc, spam (tau.mail.trust), for the log
    #: local targets with an active Sieve script, read at RCPT (tau.mail.sieve.store.DeliveryState)
    sieve: Any = None


def _lookup(txn: Txn, address: str, default_quota: int, size: int,
            mail_from: str, keyring: Any) -> tuple[bool, list[tuple[str, bool]], str | None, Any]:
    """(is the domain ours, [(target, target is local)], the first local target too full for
    ``size`` more bytes, the local targets' Sieve scripts) — one read transaction per RCPT."""
    from tau.mail.sieve.store import delivery_state
    from tau.mail.store import quota

    if not accounts.is_local_domain(txn, domain_of(address)):
        return False, [], None, None
    targets = [(t, accounts.is_local_domain(txn, domain_of(t))) for t in accounts.resolve_recipient(txn, address)]
    filtered = delivery_state(txn, keyring, [t for t, is_local in targets if is_local], mail_from)
    for target, is_local in targets:
        if is_local:
            account = quota.find_account(txn, target, default_quota)
            if account is not None and account.quota:
                used, limit = quota.usage(txn, target, default_quota)
                if used + size > limit:
                    return True, targets, target, filtered
    return True, targets, None, filtered


def _may_send_as(txn: Txn, address: str, sender: str) -> bool:
    user = accounts.get_user(txn, address)
    return user is not None and not user.disabled and accounts.user_may_send_as(txn, user, sender)


def _not_owned(txn: Txn, address: str, claimed: list[str]) -> str | None:
    """The first of ``claimed`` the user may not send as (None: all are theirs)."""
    user = accounts.get_user(txn, address)
    for sender in claimed:
        if user is None or user.disabled or not accounts.user_may_send_as(txn, user, sender):
            return sender
    return None


class Delivery:
    """The policy of one listener kind plus the calls into the mail store."""

    def __init__(self, registry: Registry, store: Any, submission: bool, commits: GroupCommit | None = None) -> None:
        self._registry = registry
        self._db = registry.db
        self._store = store
        self._commits = commits or group_commit(registry, store)
        self.submission = submission
        self._activity = registry.mail_activity
        domains = registry.config.tau.domains
        self._postmaster_domain = (domains[0] if domains else registry.config.tau.hostname).lower()

    # -- MAIL FROM -----------------------------------------------------------------------------

    async def check_sender(self, user: User | None, sender: str) -> None:
        """RFC 6409 §6.1: a submission server may insist the sender is the authenticated user."""
        if not self.submission:
            return  # MX: sender authenticity is SPF/DKIM/DMARC's business (a later issue)
        if user is None:
            raise Reply(530, "5.7.0 Authentication required")
        if not sender or not await self._db.run("smtp_may_send_as", _may_send_as, user.address, sender,
                                                readonly=True):
            raise Reply(553, f"5.7.1 Sender address <{sender}> not owned by user {user.address}")

    # -- end of data, before anything is stored ------------------------------------------------

    async def check_message(self, envelope: Envelope, bare_cr: bool, head: HeaderCapture,
                            nul: bool = False) -> None:
        """Refuse what must not be stored or relayed (issue 13, items 4 and 9).

        A bare CR (RFC 5322 §2.3) is refused on submission, and on the MX when the message would
        be relayed (an alias forwarding off-site): downstream servers that take a lone CR for a
        line end would read ``\\r.\\r\\n`` as the end of data, so what we relay, DKIM-signed,
        could carry a second, smuggled message (``554 5.6.0``, as Exim and Sendmail refuse it).
        A NUL byte (RFC 5322 §2.3, RFC 5321 §4.5.2 forbid it; receivers truncate or drop at it)
        is refused the same way. Mail for local mailboxes only is stored as delivered. On
        submission every address in From, Sender, Resent-From and Resent-Sender must be one the
        user may send as (RFC 6409 §8 lets an MSA check them): ``553 5.7.1``, the same as a foreign
        envelope sender.
        """
        if bare_cr and (self.submission or envelope.remote):
            raise Reply(554, "5.6.0 Message contains a bare CR; lines must end with CRLF")
        if nul and (self.submission or envelope.remote):
            raise Reply(554, "5.6.0 Message contains a NUL byte")
        if not self.submission:
            return
        user = envelope.user
        if user is None:
            raise Reply(530, "5.7.0 Authentication required")
        try:
            claimed = senders.claimed(head.header())
        except senders.Ambiguous:
            raise Reply(553, "5.7.1 From or Sender header cannot be read unambiguously") from None
        refused = await self._db.run("smtp_header_senders", _not_owned, user.address, claimed, readonly=True)
        if refused is not None:
            raise Reply(553, f"5.7.1 Header address <{sanitize(refused)}> not owned by user {user.address}")

    # -- RCPT TO ---------------------------------------------------------------------------------

    async def add_recipient(self, envelope: Envelope, address: str) -> None:
        """Accept ``address`` into ``envelope`` or raise the refusing Reply."""
        self._activity.mark()
        if address.lower() == "postmaster":
            address = f"postmaster@{self._postmaster_domain}"
        local_domain, targets, full, filtered = await self._db.run(
            "smtp_resolve_recipient", _lookup, address, self._store.ctx.default_quota, envelope.declared_size or 0,
            envelope.mail_from, self._store.ctx.keyring, readonly=True)
        if not local_domain:
            if envelope.user is None:
                raise Reply(554, "5.7.1 Relay access denied")
            envelope.recipients.append(address)
            envelope.remote[:] = unique([*envelope.remote, address])
            return
        if not targets:
            raise Reply(550, f"5.1.1 <{address}>: Recipient address rejected: User unknown")
        if full is not None:
            raise Reply(552, f"5.2.2 <{full}>: Mailbox full")
        local = [t for t, is_local in targets if is_local]
        envelope.recipients.append(address)
        envelope.local[:] = unique([*envelope.local, *local])
        if filtered is not None and filtered.scripts:
            envelope.sieve = filtered if envelope.sieve is None else envelope.sieve.merged(filtered)
        # an alias that forwards off-site: the outbound queue sends it on
        envelope.remote[:] = unique([*envelope.remote, *(t for t, is_local in targets if not is_local)])

    # -- end of data -----------------------------------------------------------------------------

    async def deliver(self, envelope: Envelope, blob_key: str, size: int, parsed: Any, mailbox: str = "INBOX") -> Reply:
        """Hand the committed blob to the store; returns the 250 once every row is committed.

        The rows of one message — local copies, the outbound queue row for remote recipients
        (submission, or an alias forwarding off-site) and the sender's Sent copy — commit in one
        transaction (``batch.deliver_job``, built from the store's transaction functions), so a
        failure never leaves half of it done and a retrying client cannot cause duplicates.
        If only the Sent copy does not fit the sender's quota, the message still goes, without it.
        """
        from tau.mail.store.api import QuotaExceeded
        from tau.mail.store.fields import prepare

        self._activity.mark()
        sender = envelope.user.address if envelope.user is not None else None
        try:
            fields = await self._registry.run_in_thread(prepare, parsed, None)
            job = Job(local=list(envelope.local), remote=list(envelope.remote), sender=sender,
                      mail_from=envelope.mail_from, key=blob_key, size=size, fields=fields,
                      message_id=getattr(parsed, "message_id", None), sent_copy=self.submission and sender is not None,
                      mailbox=mailbox, origin=origin(envelope, self.submission),
                      dsn=envelope.dsn.to_json(envelope.remote), require_tls=envelope.require_tls)
            job.sieve = await self._filter(envelope, parsed, size, mailbox)
            try:
                await self._commits.submit(job)
            except QuotaExceeded:
                if not job.sent_copy:
                    raise
                log.warn("no Sent copy of {queue_id}: {user} is over quota", queue_id=envelope.queue_id, user=sender)
                job.sent_copy = False
                await self._commits.submit(job)
        except Reply:
            self._discard(blob_key)
            raise
        except Exception as exc:
            self._discard(blob_key)
            if isinstance(exc, QuotaExceeded):
                raise Reply(552, f"5.2.2 Mailbox full: {exc.message}") from None
            log.failure("delivery of {queue_id} failed", queue_id=envelope.queue_id)
            raise Reply(451, "4.3.0 Local error storing the message; try again later") from None
        if job.sieve is not None and job.sieve.stores_nothing and not job.remote and not job.sent_copy:
            self._discard(blob_key)       # every recipient's filter discarded or rejected it
        self._success_reports(envelope, blob_key, size)
        if self.submission and sender is not None:   # collected addresses (tau.contacts.collect) listen
            events.publish(self._registry.bus, events.MAIL_SUBMITTED,
                           {"user": sender, "recipients": list(envelope.recipients)})
        accepted_line(self._registry, envelope, self.submission, size, getattr(parsed, "message_id", None), mailbox)
        return Reply(250, f"2.0.0 Ok: queued as {envelope.queue_id}")

    async def _filter(self, envelope: Envelope, parsed: Any, size: int, mailbox: str) -> Any:
        """The recipients' Sieve scripts (tau.mail.sieve.plan). A message every local recipient
        rejects, with nobody else to deliver to, is refused here (``550 5.7.1``, RFC 5429 ereject);
        otherwise a rejecting recipient's filter sends the envelope sender a notice."""
        if not envelope.local or envelope.sieve is None:
            return None                   # nobody has a script
        from tau.mail.sieve import plan as sieve

        made = await sieve.make_plan(self._registry, envelope.sieve, list(envelope.local), envelope.mail_from,
                                     parsed, size, mailbox)
        if made is None or not made.rejected:
            return made
        if set(made.rejected) >= set(envelope.local) and not envelope.remote and not self.submission:
            reason = "".join(c if " " <= c <= "~" else "?" for c in next(iter(made.rejected.values())))[:200]
            raise Reply(550, f"5.7.1 Rejected by the recipient's filter: {reason}")
        await sieve.add_rejection_notices(self._registry, made, parsed, size, envelope.mail_from)
        return made

    def _success_reports(self, envelope: Envelope, blob_key: str, size: int) -> None:
        """RFC 3461 NOTIFY=SUCCESS for local recipients: a ``delivered`` report, after the 250
        (it is the sender's business, not a condition of accepting the message)."""
        wanted = [r for r in envelope.local if envelope.dsn.rcpt(r).wants("SUCCESS")]
        if not wanted or not envelope.mail_from:
            return
        from tau.mail.outbound.notify import delivered_report

        d = Deferred.fromCoroutine(delivered_report(self._registry, self._store, envelope.mail_from, envelope.dsn,
                                                    wanted, blob_key, size, int(self._registry.clock.seconds())))
        d.addErrback(lambda f: log.failure("success DSN for {queue_id} failed", f, queue_id=envelope.queue_id))

    def _discard(self, blob_key: str) -> None:
        """Drop the blob we committed if no row references it (it may also be someone else's)."""
        discard = getattr(self._store, "discard_blob", None)
        if discard is not None:
            d = Deferred.fromCoroutine(discard(blob_key))
            d.addErrback(lambda f: log.failure("discarding blob failed", failure=f))


def origin(envelope: Envelope, submission: bool) -> dict[str, str]:
    """How a message came in, for the append event: the authenticated submitter (from the SMTP
    session, never from headers) or the MX."""
    if submission and envelope.user is not None:
        return {"via": "submission", "user": envelope.user.address}
    return {"via": "mx"}


def group_commit(registry: Registry, store: Any) -> GroupCommit:
    """SQLite has one writer: one batch at a time. PostgreSQL: a few, leaving connections for reads."""
    db = registry.db
    if getattr(db.engine, "single_connection", False):
        concurrency = 1
    else:
        concurrency = max(1, int(registry.config.database.pool_max) // 2)
    return GroupCommit(db, store.ctx, concurrency)


def unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
