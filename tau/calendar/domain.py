"""``Calendars``: the calendar service every front end uses (CalDAV, REST, scheduling, iMIP).

The internal API for other services (issue 9: event → call, mail → event) is here:
``put_object``/``delete_object`` for a user's calendar object, ``create_event`` for "an event
for this user", ``query`` for instances in a range. Parsing and index computation run in a
worker thread; every write is one named transaction; after commit a ``calendar.changed`` event
goes on the bus and scheduling (RFC 6638) runs for organizer and attendee changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer
from twisted.logger import Logger

from tau.bus import events
from tau.calendar import filters, ical, objects, recurrence, store
from tau.calendar.filters import CompFilter, Plan
from tau.calendar.ical import InvalidObject, ParsedObject
from tau.calendar.objects import ObjectRow
from tau.calendar.store import Access, CalendarError, CalendarRow
from tau.clock import Clock

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
T = TypeVar("T")
TOPIC = events.CALENDAR_CHANGED


@dataclass(frozen=True)
class Owner:
    """A local account as the calendar code needs it."""

    id: int
    address: str


class Calendars:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = registry.db
        self.scheduler: Any = None        # set by the service (tau.calendar.scheduling.Scheduler)
        self._ready: set[int] = set()     # users whose default collections exist

    def run(self, name: str, fn: Callable[..., T], *args: Any, readonly: bool = False) -> defer.Deferred[T]:
        return self.db.run(name, fn, *args, readonly=readonly)

    def now(self) -> float:
        clock: Clock = self.registry.clock
        return float(clock.seconds())

    # -- accounts and collections ---------------------------------------------------------------

    async def owner(self, address: str) -> Owner | None:
        uid = await self.run("cal_user", store.user_id, address, readonly=True)
        return None if uid is None else Owner(uid, address.lower())

    async def ensure_defaults(self, user: Owner) -> None:
        """The default calendar, task list and inbox, created on first use. Remembered per
        process, so the usual request is read-only (a write transaction on SQLite would queue
        every read behind the single writer)."""
        if user.id not in self._ready:
            await self.run("cal_defaults", store.ensure_defaults, user.id)
            self._ready.add(user.id)

    async def home(self, user: Owner) -> list[Access]:
        """Every collection ``user`` sees in their calendar home."""
        await self.ensure_defaults(user)
        return await self.run("cal_home", store.visible, user.id, readonly=True)

    async def access(self, viewer: Owner, owner_address: str, name: str) -> Access | None:
        if owner_address.lower() == viewer.address:
            await self.ensure_defaults(viewer)

        def txn_fn(txn: Any) -> Access | None:
            if owner_address.lower() == viewer.address:
                return store.access(txn, viewer.id, viewer.id, name)
            owner_id = store.user_id(txn, owner_address)
            return None if owner_id is None else store.access(txn, viewer.id, owner_id, name)

        return await self.run("cal_access", txn_fn, readonly=True)

    async def default_calendar(self, user: Owner, component: str = "VEVENT") -> CalendarRow:
        """The user's first own calendar that takes ``component`` (created if none does)."""
        for acc in await self.home(user):
            if acc.owned and acc.calendar.kind == "calendar" and component in acc.calendar.components:
                return acc.calendar
        name = "calendar" if component != "VTODO" else "tasks"
        try:
            return await self.run("cal_create", store.create, user.id, name, name.title(), (component,))
        except CalendarError:
            return await self.run("cal_create", store.create, user.id, f"{name}-{int(self.now())}",
                                  name.title(), (component,))

    # -- objects --------------------------------------------------------------------------------

    async def parse(self, data: bytes | str, calendar: CalendarRow) -> ParsedObject:
        supported = tuple(calendar.components) if calendar.kind == "calendar" else ical.COMPONENTS
        return await self.registry.run_in_thread(ical.parse_object, data, supported, self.now())

    async def put_object(self, actor: Owner | None, calendar: CalendarRow, name: str, data: bytes | str,
                         if_etag: str | None = None, create_only: bool = False,
                         schedule: bool = True) -> tuple[ObjectRow, bool, bool]:
        """Store one calendar object resource; returns (row, created, changed by the server).

        ``actor`` is who wrote it (None: the server itself, which never triggers scheduling).
        Raises InvalidObject (a CalDAV precondition) or CalendarError.
        """
        parsed = await self.parse(data, calendar)
        try:
            row, old = await self.db.run_grouped("cal_put", objects.put, calendar.id, name, parsed, if_etag,
                                                 create_only)
        except CalendarError as exc:
            if exc.code.startswith("no-uid-conflict:"):
                raise InvalidObject("no-uid-conflict", exc.message, 403, href=exc.code.split(":", 1)[1])
            raise
        except Exception as exc:
            if "unique" in str(exc).lower():  # two writers raced on one name or UID: the loser retries
                raise CalendarError(409, "conflict", "changed concurrently; try again")
            raise
        self._changed(calendar, name, parsed.uid, "put")
        if schedule and actor is not None and self.scheduler is not None:
            await self._schedule(self.scheduler.after_write(actor, calendar, parsed, old))
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return row, old is None, row.data != text

    async def delete_object(self, actor: Owner | None, calendar: CalendarRow, name: str,
                            schedule: bool = True) -> ObjectRow | None:
        gone = await self.run("cal_delete", objects.delete, calendar.id, name)
        if gone is not None:
            self._changed(calendar, name, gone.uid, "delete")
            if schedule and actor is not None and self.scheduler is not None:
                await self._schedule(self.scheduler.after_delete(actor, calendar, gone))
        return gone

    async def _schedule(self, work: Any) -> None:
        """Scheduling failures are logged, never turned into a failed PUT (it is committed)."""
        try:
            await work
        except Exception:
            log.failure("scheduling after a calendar change failed")

    def _changed(self, calendar: CalendarRow, name: str, uid: str, kind: str) -> None:
        self.registry.bus.publish(TOPIC, {"user": calendar.owner, "calendar": calendar.name,
                                          "calendar_id": calendar.id, "name": name, "uid": uid, "kind": kind})

    async def resolve(self, viewer: Owner, owner_address: str, name: str,
                      member: str | None) -> tuple[Access | None, ObjectRow | None]:
        """A calendar and (optionally) one of its objects, in one read transaction (every request)."""
        if owner_address.lower() == viewer.address:
            await self.ensure_defaults(viewer)

        def txn_fn(txn: Any) -> tuple[Access | None, ObjectRow | None]:
            if owner_address.lower() == viewer.address:
                acc = store.access(txn, viewer.id, viewer.id, name)
            else:
                owner_id = store.user_id(txn, owner_address)
                acc = None if owner_id is None else store.access(txn, viewer.id, owner_id, name)
            row = objects.get(txn, acc.calendar.id, member, True) if acc is not None and member else None
            return acc, row

        return await self.run("cal_resolve", txn_fn, readonly=True)

    async def get_object(self, calendar: CalendarRow, name: str) -> ObjectRow | None:
        return await self.run("cal_get", objects.get, calendar.id, name, True, readonly=True)

    async def find_uid(self, user: Owner, uid: str) -> list[tuple[CalendarRow, ObjectRow]]:
        """The user's own calendar objects with this UID (scheduling, iMIP)."""
        def txn_fn(txn: Any) -> list[tuple[CalendarRow, ObjectRow]]:
            found = objects.find_uid(txn, user.id, uid)
            return [(store.get(txn, user.id, name), row) for name, row in found]  # type: ignore[misc]

        return await self.run("cal_find_uid", txn_fn, readonly=True)

    async def create_event(self, user: Owner, fields: dict[str, Any], calendar: str | None = None,
                           schedule: bool = True) -> tuple[CalendarRow, ObjectRow]:
        """An event (or to-do) for ``user`` from plain fields (see ``tau.calendar.events``)."""
        from tau.calendar import events

        component = "VTODO" if fields.get("type") == "todo" else "VEVENT"
        cal = await self._calendar_named(user, calendar, component)
        if fields.get("conference") is True:
            # issue 9 (event → call): TauConnect provides ``calendar_conference(user, fields) -> join URL``
            make_room = self.registry.calendar_conference
            if make_room is not None:
                fields = {**fields, "conference": await make_room(user.address, fields)}
        uid, text = events.build(fields, user.address, self.registry.config.tau.hostname, self.now())
        row, _, _ = await self.put_object(user if schedule else None, cal, f"{uid}.ics", text, create_only=True)
        return cal, row

    async def _calendar_named(self, user: Owner, name: str | None, component: str) -> CalendarRow:
        if name is None:
            return await self.default_calendar(user, component)
        acc = await self.access(user, user.address, name)
        if acc is None or acc.calendar.kind != "calendar":
            raise CalendarError(404, "calendar_not_found", f"no calendar named {name}")
        if not acc.writable:
            raise CalendarError(403, "forbidden", "read-only calendar")
        return acc.calendar

    # -- queries --------------------------------------------------------------------------------

    async def query(self, calendar: CalendarRow, cf: CompFilter | None, offset: int = 0) -> list[ObjectRow]:
        """Objects matching a calendar-query filter (RFC 4791 §7.8), answered from the index."""
        p = filters.plan(cf)
        if p.impossible:
            return []
        if p.time_range is None:
            rows = await self.run("cal_query_all", objects.of_component, calendar.id, p.component, readonly=True)
            return await self._refine(rows, cf, p, offset)
        tr = p.time_range
        hits, extra = await self.run("cal_query_range", _range_txn, calendar.id, tr.start, tr.end, p.component,
                                     readonly=True)
        ids = {h.object_id for h in hits if not h.floating or
               recurrence.Instance(h.start, h.end, True, "", None).overlaps(tr.start, tr.end, offset)}
        rows = await self.run("cal_query_rows", objects.with_ids, sorted(ids), readonly=True) if ids else []
        if extra:
            rows += await self.registry.run_in_thread(_on_demand, extra, ids, tr.start, tr.end, offset)
        return await self._refine(rows, cf, p, offset)

    async def _refine(self, rows: list[ObjectRow], cf: CompFilter | None, p: Plan, offset: int) -> list[ObjectRow]:
        if not p.needs_eval or cf is None:
            return sorted(rows, key=lambda r: r.name)
        kept = await self.registry.run_in_thread(_evaluate, rows, cf, offset)
        return sorted(kept, key=lambda r: r.name)

    async def instances(self, calendars: Sequence[CalendarRow], start: int, end: int,
                        component: str | None = "VEVENT", offset: int = 0) -> list[tuple[CalendarRow, ObjectRow, Any]]:
        """(calendar, object, Instance) for every instance overlapping [start, end), by start."""
        out: list[tuple[CalendarRow, ObjectRow, Any]] = []
        for cal in calendars:
            tr = filters.TimeRange(start, end)
            cf = CompFilter("VCALENDAR", comps=[CompFilter(component, time_range=tr)]) if component else None
            rows = await self.query(cal, cf, offset) if cf is not None else \
                await self.run("cal_query_all", objects.of_component, cal.id, None, readonly=True)
            expanded = await self.registry.run_in_thread(_expand_rows, rows, start, end, offset)
            out += [(cal, row, inst) for row, inst in expanded]
        out.sort(key=lambda t: (t[2].start, t[1].id))
        return out


def _range_txn(txn: Any, calendar_id: int, start: int, end: int,
               component: str | None) -> tuple[list[objects.Hit], list[ObjectRow]]:
    return (objects.candidates(txn, calendar_id, start, end, component),
            objects.unindexed(txn, calendar_id, end, component))


@recurrence.budgeted
def _on_demand(rows: list[ObjectRow], found: set[int], start: int, end: int, offset: int) -> list[ObjectRow]:
    """Objects whose index stops early: expand their later instances now, bounded (thread)."""
    out = []
    for row in rows:
        if row.id in found or row.data is None:
            continue
        try:
            cal = ical.parse_calendar(row.data)
            timed = [comp for comp in cal.subcomponents if comp.name in recurrence.TIMED]
            hits, certain = recurrence.between(timed, max(start, (row.indexed_until or start) - 86400), end, offset)
        except (InvalidObject, ValueError, TypeError, OverflowError):
            continue
        if hits or not certain:
            out.append(row)
    return out


@recurrence.budgeted
def _evaluate(rows: list[ObjectRow], cf: CompFilter, offset: int) -> list[ObjectRow]:
    kept = []
    for row in rows:
        try:
            if row.data is not None and filters.matches(cf, ical.parse_calendar(row.data), offset):
                kept.append(row)
        except InvalidObject:
            continue
    return kept


@recurrence.budgeted
def _expand_rows(rows: list[ObjectRow], start: int, end: int, offset: int) -> list[tuple[ObjectRow, Any]]:
    out = []
    for row in rows:
        try:
            cal = ical.parse_calendar(row.data or "")
        except InvalidObject:
            continue
        timed = [comp for comp in cal.subcomponents if comp.name in recurrence.TIMED]
        hits, _ = recurrence.between(timed, start, end, offset)
        out += [(row, inst) for inst in hits]
    return out
