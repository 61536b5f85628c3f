"""Implicit scheduling (RFC 6638 §3): what the server does when organizers and attendees write.

Organizer flow: storing an event whose ORGANIZER is the calendar's owner sends a REQUEST to
every attendee when something significant changed (a new event, or more than PARTSTATs), a
REQUEST to attendees just added and a CANCEL to those removed; deleting it sends a CANCEL.
Attendee flow: an attendee changing their PARTSTAT sends a REPLY to the organizer; deleting
their copy replies DECLINED. Delivery: a local recipient gets the message in their scheduling
inbox, their calendar updated at once (``calendar-auto-schedule``) and an iMIP copy in their
mail INBOX; a remote one gets an iMIP email (RFC 6047) through the outbound queue.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.calendar import ical, itip, objects
from tau.calendar.domain import Calendars, Owner
from tau.calendar.ical import InvalidObject, ParsedObject
from tau.calendar.objects import ObjectRow
from tau.calendar.store import CalendarError, CalendarRow

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
_SAFE = re.compile(r"^[A-Za-z0-9@._-]{1,180}$")


def object_name(uid: str) -> str:
    """The resource name of an event the server creates (its UID when that is URL-safe)."""
    return (uid if _SAFE.match(uid) else hashlib.sha256(uid.encode()).hexdigest()[:40]) + ".ics"


class Scheduler:
    def __init__(self, registry: Registry, cals: Calendars) -> None:
        from tau.calendar.imip import ImipSender

        self.registry, self.cals = registry, cals
        self.imip = ImipSender(registry)

    # -- hooks called by Calendars -------------------------------------------------------------

    async def after_write(self, actor: Owner, calendar: CalendarRow, parsed: ParsedObject,
                          old: ObjectRow | None) -> None:
        if calendar.kind != "calendar":
            return
        owner = calendar.owner
        organizer = itip.organizer_of(parsed.calendar)
        if not organizer:
            return
        old_cal = _parse(old.data) if old is not None else None
        if organizer == owner:
            await self._organizer_wrote(owner, parsed.calendar, old_cal)
        elif owner in itip.attendees(parsed.calendar, scheduled_by_server=False):
            await self._attendee_wrote(owner, organizer, parsed.calendar, old_cal)

    async def after_delete(self, actor: Owner, calendar: CalendarRow, gone: ObjectRow) -> None:
        cal = _parse(gone.data)
        if cal is None or calendar.kind != "calendar":
            return
        owner, organizer = calendar.owner, itip.organizer_of(cal)
        if not organizer:
            return
        if organizer == owner:
            recipients = itip.attendees(cal) - {owner}
            if recipients and str(itip.components(cal)[0].get("STATUS", "")).upper() != "CANCELLED":
                await self.send("CANCEL", owner, itip.cancel(cal, now=self.cals.now()), recipients)
        elif owner in itip.attendees(cal, scheduled_by_server=False) and \
                any(p != "DECLINED" for p in itip.partstats(cal, owner).values()):
            await self.send("REPLY", owner, itip.reply(cal, owner, "DECLINED", now=self.cals.now()), {organizer})

    async def _organizer_wrote(self, owner: str, new: Any, old: Any | None) -> None:
        now = itip.attendees(new) - {owner}
        before = (itip.attendees(old) - {owner}) if old is not None else set()
        recipients = now if old is None or itip.significant(old, new) else now - before
        if recipients:
            await self.send("REQUEST", owner, itip.request(new), recipients)
        removed = before - now
        if removed and old is not None:
            await self.send("CANCEL", owner, itip.cancel(old, removed, now=self.cals.now()), removed)

    async def _attendee_wrote(self, owner: str, organizer: str, new: Any, old: Any | None) -> None:
        answers = itip.partstats(new, owner)
        previous = itip.partstats(old, owner) if old is not None else {}
        if answers == previous or (old is None and set(answers.values()) <= {"NEEDS-ACTION"}):
            return
        await self.send("REPLY", owner, itip.reply(new, owner, now=self.cals.now()), {organizer})

    # -- delivery ------------------------------------------------------------------------------

    async def send(self, method: str, sender: str, message: Any, recipients: set[str]) -> None:
        """Deliver an iTIP message: local recipients directly, remote ones by iMIP email."""
        remote = []
        for address in sorted(recipients):
            user = await self.cals.owner(address)
            if user is None:
                remote.append(address)
                continue
            try:
                await self.receive(user, message, sender, via_email=False)
            except Exception:
                log.failure("local scheduling delivery to {user} failed", user=address)
        local_copies = [a for a in recipients if a not in remote]
        await self.imip.send(sender, remote, local_copies, method, message)

    async def receive(self, user: Owner, message: Any, sender: str, via_email: bool) -> bool:
        """Apply an iTIP message to ``user``'s calendars (auto-schedule) and keep it in their
        scheduling inbox. ``sender`` is who it came from (an email's From for iMIP)."""
        method = str(message.get("METHOD", "")).upper()
        comps = itip.components(message)
        if not comps:
            return False
        uid = str(comps[0].get("UID", ""))
        organizer = itip.organizer_of(message)
        if method == "REPLY":
            done = await self._apply_reply(user, message, uid, sender)
        elif method in ("REQUEST", "CANCEL"):
            if sender != organizer or user.address not in itip.attendees(message, scheduled_by_server=False):
                log.info("ignored iTIP {method} for {user} from {sender}: not from the organizer to an attendee",
                         method=method, user=user.address, sender=sender)
                return False
            done = await self._apply_to_attendee(user, method, message, uid)
        else:
            return False
        if done:
            await self._to_inbox(user, message, uid)
        return done

    async def _apply_reply(self, user: Owner, message: Any, uid: str, sender: str) -> bool:
        for calendar, row in await self.cals.find_uid(user, uid):
            current = _parse(row.data)
            if current is None or itip.organizer_of(current) != user.address:
                continue
            updated = itip.apply_reply(message, current, sender)
            if updated is None:
                return False
            await self._store(calendar, row.name, ical.serialize(updated), row.etag)
            return True
        return False

    async def _apply_to_attendee(self, user: Owner, method: str, message: Any, uid: str) -> bool:
        found = await self.cals.find_uid(user, uid)
        if found:
            calendar, row = found[0]
            current = _parse(row.data)
            if current is not None and itip.organizer_of(current) != itip.organizer_of(message):
                return False  # someone else's event with the same UID: not theirs to change
            if method == "CANCEL":
                new = itip.apply_cancel(message, current) if current is not None else None
            else:
                new = itip.apply_request(message, current, user.address)
            if new is None:
                return False
            await self._store(calendar, row.name, ical.serialize(new), row.etag)
            return True
        if method == "CANCEL":
            return True  # nothing to cancel, but keep the message for the client
        component = itip.components(message)[0].name
        calendar = await self.cals.default_calendar(user, component)
        new = itip.apply_request(message, None, user.address)
        assert new is not None
        await self._store(calendar, object_name(uid), ical.serialize(new), None)
        return True

    async def _store(self, calendar: CalendarRow, name: str, text: str, etag: str | None) -> None:
        try:
            await self.cals.put_object(None, calendar, name, text, if_etag=etag, schedule=False)
        except (InvalidObject, CalendarError) as exc:
            log.warn("scheduling could not store {name} in {cal}: {why}", name=name, cal=calendar.name,
                     why=getattr(exc, "message", str(exc)))

    async def _to_inbox(self, user: Owner, message: Any, uid: str) -> None:
        """RFC 6638 §4.1: the message as a resource in the inbox (the newest per UID)."""
        inbox = next((a.calendar for a in await self.cals.home(user) if a.calendar.kind == "inbox"), None)
        if inbox is None:
            return
        old = await self.cals.run("cal_inbox_uid", objects.by_uid, inbox.id, uid, readonly=True)
        if old is not None:
            await self.cals.delete_object(None, inbox, old.name, schedule=False)
        try:
            await self.cals.put_object(None, inbox, f"{uuid.uuid4()}.ics", ical.serialize(message), schedule=False)
        except (InvalidObject, CalendarError) as exc:
            log.warn("could not keep an iTIP message in {user}'s inbox: {why}", user=user.address,
                     why=getattr(exc, "message", str(exc)))


def _parse(data: str | None) -> Any | None:
    if not data:
        return None
    try:
        return ical.parse_calendar(data)
    except InvalidObject:
        return None
