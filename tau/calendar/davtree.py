"""The CalDAV tree (RFC 4791 §4.2, RFC 6638 §2) as DAV resources (``tau.dav.resource``) under ``/dav/``.

``/dav/principals/USER/`` (RFC 3744 principals), ``/dav/calendars/USER/`` (the calendar home:
own calendars, calendars shared with USER, the scheduling inbox and outbox) and
``/dav/calendars/USER/NAME/OBJECT.ics``. Another user's home is 403 whether or not the user
exists; a calendar of theirs is 404 unless it was shared with the caller (existence does not
leak), and a read-only share refuses writes with 403 ``DAV:need-privileges``.
"""

from __future__ import annotations

from typing import Any

from tau.calendar import ical, store
from tau.calendar.calprops import column_updates, components_of, mkcol_calendar
from tau.calendar.domain import Calendars, Owner
from tau.calendar.ical import InvalidObject
from tau.calendar.objects import ObjectRow
from tau.calendar.store import Access, CalendarError, CalendarRow
from tau.dav.collections import Fixed, MemberResource, SizedBody, StoredCollection, SyncTokens
from tau.dav.errors import DavError
from tau.dav.paths import encode_path
from tau.dav.resource import Collection, DavProvider, Resolved, Resource, SyncResult

C = "{urn:ietf:params:xml:ns:caldav}"
TOKEN_PREFIX = "urn:tau:calendar:sync:"
TOKENS = SyncTokens(TOKEN_PREFIX)
READ_ONLY = DavError(403, "read-only calendar", "<D:need-privileges/>")


def dav_error(exc: InvalidObject | CalendarError) -> DavError:
    if isinstance(exc, InvalidObject):
        return DavError(exc.status, exc.message, exc.xml())
    return DavError(exc.status, exc.message)


class Principal(Fixed):
    """A user's principal (RFC 3744 §2, RFC 4791 §6.2.1, RFC 6638 §2.4.1)."""

    def __init__(self, user: Owner) -> None:
        super().__init__(user.address, [], ("{DAV:}principal",))
        self.user = user

    def display_name(self) -> str | None:
        return self.user.address


class CalendarObject(MemberResource):
    """One calendar object resource (RFC 4791 §4.1)."""

    row: ObjectRow

    def __init__(self, row: ObjectRow, access: Access | None = None, hide_etag: bool = False) -> None:
        super().__init__(row, access)
        self.hide_etag = hide_etag

    def etag(self) -> str | None:
        return None if self.hide_etag else self.row.etag

    def content_type(self) -> str | None:
        return f"text/calendar; charset=utf-8; component={self.row.component.lower()}"


class CalendarCollection(StoredCollection):
    """A calendar (RFC 4791 §4.2) or the scheduling inbox (RFC 6638 §2.2), as one user sees it."""

    def __init__(self, cals: Calendars, user: Owner, access: Access) -> None:
        self.cals, self.user, self.access = cals, user, access
        self.cal: CalendarRow = access.calendar
        self.stored = self.cal
        self.writable = access.writable
        inbox = self.cal.kind == "inbox"
        self.resource_types = (C + "schedule-inbox",) if inbox else (C + "calendar",)
        self._props: dict[str, str] | None = None

    def _wrap(self, row: ObjectRow) -> CalendarObject:
        return CalendarObject(row, self.access)

    async def members(self) -> list[Resource]:
        from tau.calendar import objects

        rows = await self.cals.run("cal_members", objects.members, self.cal.id, readonly=True)
        return [self._wrap(r) for r in rows]

    async def member(self, name: str) -> Resource | None:
        row = await self.cals.get_object(self.cal, name)
        return None if row is None else self._wrap(row)

    async def put_member(self, name: str, body: Any, content_type: str | None,
                         existing: Resource | None) -> Resource:
        if not self.writable:
            await body.abort()
            raise READ_ONLY
        if self.cal.kind == "inbox":
            await body.abort()
            raise DavError(403, "the scheduling inbox is filled by the server", "<D:need-privileges/>")
        ctype = (content_type or "text/calendar").split(";")[0].strip().lower()
        if ctype not in ("text/calendar", "application/octet-stream", "text/plain", ""):
            await body.abort()
            raise dav_error(InvalidObject("supported-calendar-data", f"{ctype} is not text/calendar"))
        data = await body.finish()
        try:
            row, _, changed = await self.cals.put_object(self.user, self.cal, name, data)
        except (InvalidObject, CalendarError) as exc:
            if isinstance(exc, InvalidObject) and exc.href:
                exc.href = encode_path(["dav", "calendars", self.user.address, self.access.name, exc.href])
            raise dav_error(exc)
        # RFC 4791 §5.3.4: no ETag in the response when what we stored is not what was sent
        return CalendarObject(row, self.access, hide_etag=changed)

    async def delete_member(self, member: Resource) -> None:
        if not self.writable:
            raise READ_ONLY
        if not isinstance(member, CalendarObject):
            raise DavError(403, "cannot delete this")
        await self.cals.delete_object(self.user, self.cal, member.name, schedule=self.cal.kind == "calendar")

    async def transfer(self, source: Resource, name: str, move: bool, depth_infinity: bool,
                       replace: Resource | None) -> Resource:
        """COPY/MOVE of an object between calendars (clients move events this way)."""
        if not self.writable or self.cal.kind != "calendar":
            raise READ_ONLY
        if not isinstance(source, CalendarObject) or source.row.data is None:
            raise DavError(403, "only calendar objects can be copied or moved here")
        if move and not source.writable:
            raise READ_ONLY
        if replace is not None:
            await self.cals.delete_object(None, self.cal, replace.name)
        try:
            row, _, _ = await self.cals.put_object(None, self.cal, name, source.row.data)
        except (InvalidObject, CalendarError) as exc:
            raise dav_error(exc)
        if move:
            from_cal = await self.cals.run("cal_by_id", store.by_id, source.row.calendar_id, readonly=True)
            if from_cal is not None:
                await self.cals.delete_object(None, from_cal, source.name)
        return self._wrap(row)

    def sync_token(self) -> str | None:
        return TOKENS.token(self.cal.id, self.cal.sync_seq)

    async def sync_changes(self, token: str | None, infinite: bool) -> SyncResult:
        from tau.calendar import objects

        since = 0 if token is None else TOKENS.parse(token, self.cal.id, self.cal.sync_seq)
        state = await self.cals.run("cal_sync", objects.sync_state, self.cal.id, since, readonly=True)
        return TOKENS.result(self.cal.id, state, self._wrap)

    async def dead_properties(self) -> dict[str, str]:
        if self._props is None:
            self._props = await self.cals.run("cal_props", store.props, self.cal.id, readonly=True)
        return self._props

    async def patch_properties(self, set_props: dict[str, str], remove: list[str]) -> None:
        if not self.writable:
            raise READ_ONLY
        columns, dead_set, dead_remove = column_updates(set_props, remove)

        def txn_fn(txn: Any) -> None:
            if columns:
                store.update(txn, self.cal.id, **columns)
            store.set_props(txn, self.cal.id, dead_set, dead_remove)

        await self.cals.run("cal_proppatch", txn_fn)
        self._props = None


class Home(Collection):
    """``/dav/calendars/USER/`` (RFC 4791 §4.2 calendar home): where MKCALENDAR creates calendars."""

    writable = True

    def __init__(self, cals: Calendars, user: Owner, accesses: list[Access] | None = None) -> None:
        self.cals, self.user, self._accesses = cals, user, accesses

    @property
    def name(self) -> str:
        return self.user.address

    async def members(self) -> list[Resource]:
        if self._accesses is None:
            self._accesses = await self.cals.home(self.user)
        out: list[Resource] = [CalendarCollection(self.cals, self.user, a) for a in self._accesses]
        out.append(Fixed(store.OUTBOX, [], (C + "schedule-outbox",)))
        return out

    async def member(self, name: str) -> Resource | None:
        return next((m for m in await self.members() if m.name == name), None)

    async def create_collection(self, name: str, body: Any = None) -> Resource:
        """Extended MKCOL (RFC 5689) with a ``C:calendar`` resourcetype makes a calendar."""
        if body is None:
            raise DavError(403, "only calendars can be created here (use MKCALENDAR)")
        return await mkcol_calendar(self, name, body)

    async def make_calendar(self, name: str, props: dict[str, str]) -> Resource:
        columns, dead, _ = column_updates(props, [])
        comps = components_of(props)
        try:
            cal = await self.cals.run("cal_create", store.create, self.user.id, name,
                                      columns.pop("display_name", "") or name, comps, dead, columns)
        except CalendarError as exc:
            raise DavError(exc.status, exc.message, "<D:resource-must-be-null/>" if exc.status == 405 else None)
        return CalendarCollection(self.cals, self.user, Access(cal, cal.name, True, True))

    async def delete_member(self, member: Resource) -> None:
        if not isinstance(member, CalendarCollection) or member.cal.kind != "calendar":
            raise DavError(403, "this collection cannot be deleted")
        if not member.access.owned:
            from tau.calendar import store as st

            await self.cals.run("cal_unshare", st.unshare, member.cal.user_id, member.cal.name, self.user.address)
            return
        await self.cals.run("cal_delete_calendar", store.delete, member.cal.id)


class CalendarProvider(DavProvider):
    """Resolves ``/dav/...`` for the authenticated user."""

    dav_classes = ["access-control", "calendar-access", "calendar-schedule", "calendar-auto-schedule",
                   "extended-mkcol", "calendarserver-principal-property-search"]

    def __init__(self, cals: Calendars) -> None:
        self.cals = cals

    def lock_owner(self, key: tuple[str, ...]) -> str | None:
        """Calendar lock keys are ``("calendars", owner address, calendar, ...)``."""
        return key[1] if len(key) > 1 and key[0] == "calendars" else None

    def principal_url(self, user: Any) -> str:
        return f"/dav/principals/{user.address}/"

    def supported_reports(self, resource: Resource) -> list[str]:
        if isinstance(resource, CalendarCollection):
            reports = [C + "calendar-query", C + "calendar-multiget", "{DAV:}sync-collection"]
            return reports + ([C + "free-busy-query"] if resource.cal.kind == "calendar" else [])
        if isinstance(resource, CalendarObject):
            return [C + "calendar-query", C + "calendar-multiget"]
        if isinstance(resource, Principal) or (isinstance(resource, Fixed) and resource.name == "principals"):
            return ["{DAV:}principal-property-search", "{DAV:}principal-search-property-set",
                    "{DAV:}expand-property"]
        return []

    async def resolve(self, user: Any, segments: list[str]) -> Resolved:
        me = Owner(user.id, user.address.lower())
        if not segments:
            return Resolved([], Fixed("", [Fixed("principals"), Fixed("calendars")]), None, ("",))
        top, rest = segments[0], segments[1:]
        if top == "principals":
            if not rest:
                return Resolved(segments, Fixed("principals", [Principal(me)]), None, tuple(segments))
            if rest[0].lower() != me.address:
                raise DavError(403, "not your principal")
            if len(rest) > 1:
                raise DavError(404, "no such resource")
            return Resolved(segments, Principal(me), None, tuple(segments))
        if top != "calendars":
            raise DavError(404, "no such resource")
        if not rest:
            return Resolved(segments, Fixed("calendars", [Home(self.cals, me)]), None, tuple(segments))
        if rest[0].lower() != me.address and len(rest) == 1:
            raise DavError(403, "not your calendar home")
        if len(rest) == 1:
            return Resolved(segments, Home(self.cals, me), None, ("calendars", me.address))
        return await self._calendar(me, segments, rest)

    async def _calendar(self, me: Owner, segments: list[str], rest: list[str]) -> Resolved:
        owner, name = rest[0].lower(), rest[1]
        mine = owner == me.address
        if mine and name == store.OUTBOX:
            if len(rest) > 2:
                raise DavError(404, "no such resource")
            return Resolved(segments, Fixed(store.OUTBOX, [], (C + "schedule-outbox",)), None,
                            ("calendars", owner, name))
        access, row = await self.cals.resolve(me, owner, name, rest[2] if len(rest) == 3 else None)
        if access is None:
            if not mine or len(rest) > 2:
                raise DavError(404, "no such calendar")
            return Resolved(segments, None, Home(self.cals, me), ("calendars", owner, name))
        canonical = ("calendars", access.calendar.owner, access.calendar.name)
        collection = CalendarCollection(self.cals, me, access)
        if len(rest) == 2:
            parent = Home(self.cals, me) if mine else None
            return Resolved(segments, collection, parent, canonical)
        if len(rest) > 3:
            raise DavError(404, "no such resource")
        resource = None if row is None else CalendarObject(row, access)
        return Resolved(segments, resource, collection, canonical + (rest[2],))


class CalendarBody(SizedBody):
    """PUT body sink for calendar objects: over ``limit`` the PUT is refused with
    ``CALDAV:max-resource-size`` (RFC 4791 §5.3.2.1) without ever holding more than ``limit`` bytes."""

    def __init__(self, request: Any, length: int | None, limit: int = ical.MAX_RESOURCE_SIZE) -> None:
        super().__init__(request, length, limit)

    def too_large(self) -> Exception:
        return dav_error(InvalidObject("max-resource-size", f"calendar object over {self.limit} bytes"))
