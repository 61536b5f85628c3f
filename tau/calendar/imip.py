"""iMIP (RFC 6047): iTIP messages by email, out through TauMail and in from delivered mail.

Out: one ``multipart/alternative`` message (a text summary and the ``text/calendar;
method=...`` part, §2.4) per scheduling action: remote recipients through the outbound queue
(``MailStore.enqueue_outbound``: DKIM and delivery are the outbound agent's), local ones straight
into their INBOX (their calendars were already updated, so the copy is marked as seen for iMIP).
In: after a message lands in a user's INBOX (``mailbox.changed``, kind ``append``), a message
whose structure has a text/calendar part is read once, and its REQUEST, REPLY or CANCEL is
applied as coming from the From address (§3: the sender must be the organizer, or the attendee
replying). The Message-ID is remembered per user, so a copy appended again is not applied twice.

Whether From can be believed depends on how the message came in, which the store's append event
says (``origin``, set by the SMTP session or the API, never read from the message):
- local submission (SMTP AUTH or ``POST /api/emails``): From must be an address the authenticated
  user may send as (``accounts.user_may_send_as``; submission already refuses anything else with
  553, this is checked again here); headers such as Authentication-Results count for nothing;
- the MX: our own Authentication-Results must show an aligned pass (DMARC, or SPF/DKIM aligned
  with From); mail claiming one of our own domains is never applied from the MX, because our
  users' mail comes in by submission;
- no origin (IMAP APPEND by the owner, tau's own notices): as the MX, without the domain rule.
Otherwise the invitation stays an ordinary message and no calendar changes.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.auth import accounts
from tau.bus import events
from tau.calendar import ical, itip
from tau.calendar.domain import Calendars
from tau.calendar.store import mark_imip_seen as mark_seen
from tau.calendar.store import user_id as store_user_id
from tau.mail import senders
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
MAX_IMIP = 2 * 1024 * 1024
SUBJECTS = {"REQUEST": "Invitation", "CANCEL": "Cancelled", "REPLY": "Reply"}




def build_message(sender: str, recipients: list[str], method: str, message: Any, hostname: str,
                  now: float) -> tuple[bytes, str]:
    """(RFC 5322 bytes, Message-ID) of an iMIP message."""
    comps = itip.components(message)
    first = comps[0] if comps else {}
    summary = str(first.get("SUMMARY", "")) if comps else ""
    verb = SUBJECTS.get(method, method.title())
    if method == "REPLY" and comps:
        atts = first.get("ATTENDEE")
        att = atts[0] if isinstance(atts, list) else atts
        partstat = str(getattr(att, "params", {}).get("PARTSTAT", "")).title() if att is not None else ""
        verb = f"{partstat or 'Reply'}"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = f"{verb}: {summary}" if summary else verb
    msg["Date"] = formatdate(now, usegmt=True)
    message_id = make_msgid(domain=hostname)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    lines = [f"{verb}: {summary}", ""]
    if comps and first.get("DTSTART") is not None:
        lines.append(f"When: {first['DTSTART'].dt}")
    if comps and first.get("LOCATION") is not None:
        lines.append(f"Where: {first['LOCATION']}")
    lines.append(f"Organizer: {itip.organizer_of(message)}")
    msg.set_content("\n".join(lines) + "\n")
    msg.add_alternative(ical.serialize(message), subtype="calendar", params={"method": method})
    return msg.as_bytes(), message_id


_RESULT = re.compile(r"\b(spf|dkim|dmarc)=([a-z]+)\b[^;]*?(?:smtp\.mailfrom|header\.d|header\.from)=([^\s;]+)", re.I)


def aligned(domain: str, sender_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 §3.1): the same domain or one a subdomain of the other."""
    a, b = domain.lower().rstrip("."), sender_domain.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def authenticated(msg: Any, authserv: str, sender: str) -> bool | None:
    """Did our MX authenticate the From address (RFC 8601 results)? None: no results of ours
    (inbound checks off), True: DMARC, or SPF/DKIM aligned with the From domain, passed."""
    ours = [str(v) for v in msg.get_all("Authentication-Results", [])
            if str(v).split(";", 1)[0].strip().lower() == authserv.lower()]
    if not ours:
        return None
    domain = sender.rpartition("@")[2]
    for _method, result, value in _RESULT.findall(ours[0]):
        if result.lower() == "pass" and aligned(value.rpartition("@")[2], domain):
            return True
    return False


def extract(raw: bytes, authserv: str = "") -> tuple[str, str, list[Any]]:
    """(From address, Message-ID, [iTIP calendars]) of an email (runs in a thread). A message our
    MX could not authenticate as coming from its From address yields no calendars (RFC 6047 §3)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    sender = senders.author(raw)        # the same reading submission checked (tau.mail.senders)
    if authserv and authenticated(msg, authserv, sender) is False:
        log.info("iMIP message from {sender} ignored: not authenticated by SPF, DKIM or DMARC", sender=sender)
        return sender, str(msg.get("Message-ID", "")).strip(), []
    found = []
    for part in msg.walk():
        if part.get_content_type() != "text/calendar":
            continue
        try:
            text = part.get_content()
            cal = ical.parse_calendar(text if isinstance(text, str) else bytes(text))
        except Exception:
            continue
        if str(cal.get("METHOD", "")).upper() in ("REQUEST", "REPLY", "CANCEL"):
            found.append(cal)
    return sender, str(msg.get("Message-ID", "")).strip(), found


def sender_trusted(txn: Txn, origin: dict[str, Any] | None, sender: str) -> bool:
    """May an iMIP message that came in by ``origin`` be applied as coming from ``sender``?"""
    origin = origin or {}
    via = origin.get("via")
    if via == "submission":
        user = accounts.get_user(txn, str(origin.get("user", "")))
        return user is not None and not user.disabled and accounts.user_may_send_as(txn, user, sender)
    if via == "mx":
        return not accounts.is_local_domain(txn, sender.rpartition("@")[2])
    return True


class ImipSender:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def send(self, sender: str, remote: list[str], local: list[str], method: str, message: Any) -> None:
        if not remote and not local:
            return
        hostname = self.registry.config.tau.hostname
        store = self.registry.mail_store
        if remote:
            raw, message_id = await self.registry.run_in_thread(build_message, sender, remote, method, message,
                                                                hostname, self.registry.clock.seconds())
            info = await self.registry.blobs.put(raw)
            try:
                await store.enqueue_outbound(sender, sender, remote, info.key, info.size, message_id)
            except Exception:
                await store.discard_blob(info.key)
                raise
            log.info("iMIP {method} from {sender} queued for {to}", method=method, sender=sender, to=",".join(remote))
        if local:
            raw, message_id = await self.registry.run_in_thread(build_message, sender, local, method, message,
                                                                hostname, self.registry.clock.seconds())
            db = self.registry.db
            for address in local:
                owner = await db.run("cal_user", store_user_id, address, readonly=True)
                if owner is not None:
                    await db.run("cal_imip_seen", mark_seen, owner, message_id)
            try:
                await store.deliver(local, raw, None, len(raw), None)
            except Exception:
                log.failure("iMIP copy to local INBOX failed")


class ImipReceiver:
    """Applies iMIP messages delivered to local users (subscribed to ``mailbox.changed``)."""

    def __init__(self, registry: Registry, cals: Calendars) -> None:
        self.registry, self.cals = registry, cals
        self.pending: list[defer.Deferred[None]] = []

    def _authserv(self) -> str:
        """The authserv-id our MX writes into Authentication-Results (``[trust] authserv_id``)."""
        config = self.registry.config
        try:
            return str(config.trust.authserv_id or config.tau.hostname)
        except (KeyError, AttributeError):
            return str(config.tau.hostname)

    def subscribe(self) -> None:
        bus = self.registry.bus  # once per cluster: only mail delivered on this node (issue 9)
        getattr(bus, "subscribe_local", bus.subscribe)(events.MAILBOX_CHANGED, self._on_event)

    def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        if event.get("kind") != "append" or event.get("mailbox") != "INBOX":
            return
        d = defer.ensureDeferred(self.process(str(event.get("user", "")), int(event.get("mailbox_id", 0)),
                                              list(event.get("uids", [])), event.get("origin")))
        d.addErrback(lambda f: log.failure("iMIP processing failed", failure=f))
        self.pending.append(d)
        d.addBoth(lambda result: (self.pending.remove(d) if d in self.pending else None, result)[1])

    async def process(self, user: str, mailbox_id: int, uids: list[int],
                      origin: dict[str, Any] | None = None) -> int:
        """Apply the iMIP messages among ``uids`` that came in by ``origin``; returns how many
        were applied."""
        store = self.registry.mail_store
        metas = await store.fetch(mailbox_id, uids, user=user)
        applied = 0
        for meta in metas:
            if "calendar" not in (meta.bodystructure or "").lower() or meta.size > MAX_IMIP:
                continue
            owner = await self.cals.owner(user)
            if owner is None or self.cals.scheduler is None:
                return applied
            raw = await store.read(meta.blob_key)
            submitted = isinstance(origin, dict) and origin.get("via") == "submission"
            authserv = "" if submitted else self._authserv()    # a submitter's headers prove nothing
            sender, message_id, messages = await self.registry.run_in_thread(extract, raw, authserv)
            if not messages or not sender:
                continue
            if not await self.cals.run("cal_imip_sender", sender_trusted, origin, sender, readonly=True):
                log.info("iMIP message from {sender} to {user} not applied: not sent by {sender} ({via})",
                         sender=sender, user=user, via=(origin or {}).get("via", "local"))
                continue
            key = message_id or meta.blob_key
            if not await self.cals.run("cal_imip_seen", mark_seen, owner.id, key[:500]):
                continue
            for message in messages:
                if await self.cals.scheduler.receive(owner, message, sender, via_email=True):
                    applied += 1
        return applied
